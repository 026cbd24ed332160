"""`wolfpack up` as a real process: nats-server and all five services, restarts, clean stop."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from libs.common import names, subjects
from libs.common.bus.stream_state import stream_window
from libs.common.endpoints import FILE as ENDPOINTS_FILE
from libs.common.endpoints import Endpoints, read_endpoints
from tests.cli import cli_running, run_cli, run_cli_async
from tests.stack import UpStack, log_tail, nats_client, start_up
from tests.waiting import eventually_sync


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie has finished running)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def healthz(url: str) -> dict[str, str] | None:
    try:
        answer = httpx.get(f"{url}/healthz", timeout=2, trust_env=False)
    except httpx.HTTPError:
        return None
    return answer.json() if answer.status_code == 200 else None


def pid_of(stack: UpStack, name: str) -> int | None:
    try:
        return int((stack.data / "run" / f"{name}.pid").read_text())
    except (FileNotFoundError, ValueError):
        return None


# The WOLFPACK stream's retention `up` is given (not the defaults), for every service it runs.
RETENTION = ("--events-max-age", "3d", "--events-max-bytes", "256MiB")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpStack]:
    """One `wolfpack up` for the module; start_up waits until all five answer /healthz."""
    with start_up(tmp_path_factory.mktemp("up") / "data", None, *RETENTION) as up:
        yield up


def test_every_service_answers_healthz(stack: UpStack) -> None:
    for service in names.SERVICES:
        assert healthz(stack.url(service)) == {"service": service, "status": "ok"}


def test_token_file_is_private(stack: UpStack) -> None:
    path = stack.data / names.TOKEN_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    assert len(stack.token) >= 32


def test_endpoints_json_says_where_everything_is(stack: UpStack) -> None:
    assert read_endpoints(stack.data) == Endpoints(
        nats=f"nats://127.0.0.1:{names.NATS_PORT + stack.port_offset}",
        services={s: f"http://127.0.0.1:{p + stack.port_offset}" for s, p in names.PORTS.items()},
        token_file=str((stack.data / names.TOKEN_FILE).resolve()),
    )


def test_nats_server_is_embedded(stack: UpStack) -> None:
    pid = pid_of(stack, "nats-server")
    assert pid is not None and alive(pid)
    port = names.NATS_PORT + stack.port_offset
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        assert conn.recv(4096).startswith(b"INFO ")
    assert (stack.data / "nats").is_dir()


def test_a_second_up_on_the_same_data_is_refused(stack: UpStack) -> None:
    """Two ups would run two nats-servers on one JetStream store, which nats-server allows."""
    before = pid_of(stack, "nats-server")
    second = ["up", "--data", str(stack.data), "--port-offset", str(stack.port_offset + 1)]
    done = run_cli("wolfpack", *second, within=60)
    assert done.returncode != 0
    assert f"another wolfpack up (pid {stack.process.pid}) already runs on" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert pid_of(stack, "nats-server") == before  # the running one is untouched
    assert healthz(stack.url("registry")) is not None


async def test_nats_wants_the_token_that_only_root_can_read(stack: UpStack) -> None:
    """Without the token a local user could write KV around the API token."""
    import nats.errors

    plain = f"nats://127.0.0.1:{names.NATS_PORT + stack.port_offset}"
    with pytest.raises(nats.errors.Error) as refused:
        async with nats_client(plain, allow_reconnect=False, max_reconnect_attempts=0):
            pass
    assert "authorization" in str(refused.value).lower()
    async with nats_client(stack.nats_url, allow_reconnect=False):
        pass


def test_the_nats_token_is_private_and_on_no_command_line(stack: UpStack) -> None:
    for private in (stack.data / names.NATS_TOKEN_FILE, stack.data / "nats" / "auth.conf"):
        assert private.stat().st_mode & 0o077 == 0, private
    # Every user can read command lines (`ps`).
    for name in (*names.SERVICES, "nats-server"):
        pid = pid_of(stack, name)
        assert pid is not None
        assert stack.nats_token not in Path(f"/proc/{pid}/cmdline").read_text(), name


async def test_wolfctl_follows_events_with_the_token_from_the_data_folder(
    stack: UpStack,
) -> None:
    env = {"WOLFPACK_DATA": str(stack.data)}
    async with cli_running("wolfctl", "node", "status", "-w", "-o", "json", env=env) as watch:
        assert watch.stdout is not None and watch.stderr is not None
        async with asyncio.timeout(60):  # a wolfctl stuck connecting fails the test
            # The snapshot: NATS was reached, then the API.
            first = (await watch.stdout.readline()).decode()
            ended = "" if first else (await watch.stderr.read()).decode()
        assert first.startswith("["), first + ended


async def test_the_stream_keeps_events_as_long_and_as_much_as_up_was_told(
    stack: UpStack,
) -> None:
    async with nats_client(stack.nats_url) as nc:
        window = await stream_window(nc)
    assert (window.max_age, window.max_bytes) == (3 * 86400, 256 * 1024**2)
    assert window.kept() == "3 days / 256 MiB"


async def test_wolfctl_reads_events_with_the_token_from_the_data_folder(stack: UpStack) -> None:
    headers = {"Authorization": f"Bearer {stack.token}"}
    async with httpx.AsyncClient(base_url=stack.registry_url, headers=headers) as api:
        answer = await api.put(f"{names.API_PREFIX}/nodes/evt1", json={"comment": "replayed"})
        assert answer.status_code in (200, 201), answer.text
    env = {"WOLFPACK_DATA": str(stack.data)}
    updated = subjects.node("evt1", "updated")
    done = await run_cli_async("wolfctl", "events", "--subject", updated, env=env)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["subject"] for line in lines] == [updated]
    assert lines[0]["event"]["name"] == "evt1"


def test_wolfctl_without_the_nats_token_says_so_at_once(stack: UpStack, tmp_path: Path) -> None:
    """A user who cannot read DATA/nats.token: one clear line, not minutes of retries."""
    elsewhere = tmp_path / "data"
    elsewhere.mkdir()
    for name in (ENDPOINTS_FILE, names.TOKEN_FILE):
        (elsewhere / name).write_bytes((stack.data / name).read_bytes())
    done = run_cli(
        "wolfctl", "node", "status", "-w", env={"WOLFPACK_DATA": str(elsewhere)}, within=60
    )
    assert done.returncode == 1
    assert "Authorization Violation" in done.stderr and "nats.token" in done.stderr
    assert "Traceback" not in done.stderr


def test_killed_service_is_restarted(stack: UpStack) -> None:
    old = pid_of(stack, "builder")
    assert old is not None
    os.kill(old, signal.SIGKILL)

    new = eventually_sync(
        lambda: pid_of(stack, "builder"),
        "a new builder process",
        within=60,
        until=lambda pid: pid not in (None, old),
    )
    assert alive(new) and not alive(old)
    eventually_sync(
        lambda: healthz(stack.url("builder")), "the new builder answering /healthz", within=60
    )
    assert "builder exited with code -9" in stack.log.read_text()


def test_sigterm_stops_every_process(tmp_path: Path) -> None:
    with start_up(tmp_path / "data") as up:
        run = up.data / "run"
        pids = {p.stem: int(p.read_text()) for p in run.glob("*.pid")}
        assert set(pids) == {*names.SERVICES, "nats-server"}
        up.process.send_signal(signal.SIGTERM)
        assert up.process.wait(timeout=60) == 0, log_tail(up.log)
    assert [name for name, pid in pids.items() if alive(pid)] == []
    assert all(healthz(up.url(service)) is None for service in names.SERVICES)
    assert list(run.glob("*.pid")) == []
    assert "stopped" in log_tail(up.log, 3)


def test_a_killed_up_leaves_no_process_behind_and_starts_again(tmp_path: Path) -> None:
    """SIGKILL or the OOM killer: up cannot stop its children, so the kernel does (services
    and nats-server alike). Nothing holds the ports, and the next up serves what was stored."""
    data = tmp_path / "data"
    with start_up(data) as first:
        headers = {"Authorization": f"Bearer {first.token}"}
        put = httpx.put(
            f"{first.registry_url}/api/v1/nodes/kept", json={}, headers=headers, trust_env=False
        )
        assert put.is_success, put.text
        pids = {p.stem: int(p.read_text()) for p in (data / "run").glob("*.pid")}
        assert set(pids) == {*names.SERVICES, "nats-server"}
        first.process.kill()
        first.process.wait(timeout=30)
    # At once: the new up waits for what the kernel is still stopping.
    with start_up(data, first.port_offset) as second:
        for name, pid in pids.items():
            eventually_sync(lambda pid=pid: not alive(pid), f"{name} (pid {pid}) ending", within=30)
        headers = {"Authorization": f"Bearer {second.token}"}
        got = httpx.get(f"{second.registry_url}/api/v1/nodes/kept", headers=headers)
        assert got.status_code == 200, got.text
