"""`wolfpack run SERVICE` as a real process against a real nats-server."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

import httpx
import pytest

from libs.common import names
from libs.runtime.services import SERVICES, load
from tests.cli import REPO, run_cli, start_cli
from tests.stack import log_tail, run_service, start_nats, stop_process, wait_healthy


def test_run_builder_answers_healthz_and_stops_cleanly(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with start_nats(tmp_path / "nats") as nats:
        process, port, log = run_service("builder", data, nats.url)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, process, log)
            answer = httpx.get(f"{url}/healthz", trust_env=False)
            assert answer.json() == {"service": "builder", "status": "ok"}
            assert (data / names.TOKEN_FILE).stat().st_mode & 0o777 == 0o600
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=15) == 0, log_tail(log)
        finally:
            stop_process(process)
    text = log.read_text()
    assert "INFO builder: builder ready" in text
    assert "Traceback" not in text


def test_settings_come_from_the_environment(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = tmp_path / "envdata"
    with start_nats(tmp_path / "nats") as nats:
        env = {
            "WOLFPACK_DATA": str(data),
            "WOLFPACK_NATS": nats.url,
            "WOLFPACK_BIND": "127.0.0.1",
            "WOLFPACK_PORT_OFFSET": str(port - names.PORTS["tftpd"]),
        }
        log = tmp_path / "tftpd.log"
        process = start_cli("wolfpack", "run", "tftpd", log=log, env=env)
        try:
            wait_healthy(f"http://127.0.0.1:{port}", process, log)
            assert (data / names.TOKEN_FILE).exists()
        finally:
            stop_process(process)


@pytest.mark.parametrize("given", ["flag", "variable"])
def test_a_service_reads_its_setting_from_the_flag_or_the_variable(
    tmp_path: Path, given: str
) -> None:
    """bootd's stall limit, as `GET /api/v1/serving` reports the one it runs with."""
    data = tmp_path / "data"
    flags = ["--bootd-stall-seconds", "7.5"] if given == "flag" else []
    variable = {"WOLFPACK_BOOTD_STALL_SECONDS": "7.5"} if given == "variable" else {}
    with start_nats(tmp_path / "nats") as nats:
        process, port, log = run_service("bootd", data, nats.url, *flags, env=variable)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, process, log)
            token = (data / names.TOKEN_FILE).read_text().strip()
            answer = httpx.get(
                f"{url}{names.API_PREFIX}/serving",
                headers={"Authorization": f"Bearer {token}"},
                trust_env=False,
            )
        finally:
            stop_process(process)
    assert answer.status_code == 200, answer.text
    assert answer.json()["stalls"]["limit_seconds"] == 7.5


def test_port_in_use_fails_with_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as taken, start_nats(tmp_path / "nats") as nats:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        offset = port - names.PORTS["bootd"]
        done = run_cli(
            "wolfpack", "run", "bootd", "--data", str(tmp_path / "data"), "--nats", nats.url,
            "--bind", "127.0.0.1", "--port-offset", str(offset), within=60,
        )  # fmt: skip
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
    assert errors == [f"ERROR bootd: cannot listen on 127.0.0.1:{port}: Address already in use"]
    assert "Traceback" not in done.stderr


def test_unknown_service_is_refused_listing_the_valid_names() -> None:
    done = run_cli("wolfpack", "run", "dhcpd", within=60)
    assert done.returncode == 2
    assert "'dhcpd' is not one of" in done.stderr
    assert all(f"'{name}'" in done.stderr for name in SERVICES)


def test_every_service_has_a_port_a_folder_and_code_to_run() -> None:
    assert list(SERVICES) == list(names.SERVICES) == list(names.PORTS)
    assert {app.parent.name for app in (REPO / "services").glob("*/app.py")} == set(SERVICES)
    assert all(callable(load(name)) for name in SERVICES)
