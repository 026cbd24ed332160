"""`wolfpack nats-auth` locks a NATS that up does not run (compose's): a real nats-server
started with the config it writes refuses clients without the token, and a service reading
the same DATA folder presents the token and gets in."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from libs.common import names
from libs.common.bus.auth import nats_token
from libs.common.bus.connection import Bus, NatsRefused
from libs.common.bus.server import NatsServer, free_port
from libs.common.endpoints import Endpoints, read_endpoints, write_endpoints
from libs.common.security.api_token import read_token
from tests.cli import run_cli
from tests.stack import connected_bus


def nats_auth(data: Path, url: str, *also: str) -> subprocess.CompletedProcess[str]:
    aliases = [arg for alias in also for arg in ("--also", alias)]
    return run_cli("wolfpack", "nats-auth", "--data", str(data), "--url", url, *aliases)


async def test_the_config_it_writes_locks_a_real_nats_server_and_services_get_in(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    url = f"nats://127.0.0.1:{free_port()}"
    done = await asyncio.to_thread(nats_auth, data, url)
    assert done.returncode == 0, done.stderr
    token = read_token(data, names.NATS_TOKEN_FILE)
    assert token and token not in done.stdout  # where it is, never what it is
    assert (data / names.NATS_TOKEN_FILE).stat().st_mode & 0o077 == 0
    config = data / "nats" / "auth.conf"
    assert f"-c {config}" in done.stdout and config.stat().st_mode & 0o077 == 0

    port = int(url.rsplit(":", 1)[1])
    server = NatsServer(tmp_path / "store", port=port, config=config)
    await server.start()
    try:
        async with asyncio.timeout(10):
            with pytest.raises(NatsRefused):
                await Bus.connect(server.url, "stranger")
            # What every service does: the token DATA holds for the URL endpoints.json names.
            async with connected_bus(url, "registry", token=nats_token(url, data)):
                pass
    finally:
        await server.stop()


def test_run_again_it_keeps_the_token_and_the_services_listed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    listed = {"registry": "http://registry:9870"}
    write_endpoints(data, Endpoints(nats="nats://old:4222", services=listed, token_file="x"))
    assert nats_auth(data, "nats://nats:4222").returncode == 0
    first = read_token(data, names.NATS_TOKEN_FILE)
    assert nats_auth(data, "nats://nats:4222").returncode == 0
    assert read_token(data, names.NATS_TOKEN_FILE) == first
    known = read_endpoints(data)
    assert known.nats == "nats://nats:4222" and known.services == listed
    assert known.nats_aliases == []


def test_an_alias_is_recorded_and_its_server_gets_the_token(tmp_path: Path) -> None:
    data = tmp_path / "data"
    done = nats_auth(data, "nats://nats:4222", "nats://127.0.0.1:4222")
    assert done.returncode == 0, done.stderr
    assert "nats://127.0.0.1:4222" in done.stdout
    assert read_endpoints(data).nats_aliases == ["nats://127.0.0.1:4222"]
    token = read_token(data, names.NATS_TOKEN_FILE)
    assert nats_token("nats://127.0.0.1:4222", data) == token
    # Run again without it: the alias is gone, the token kept.
    assert nats_auth(data, "nats://nats:4222").returncode == 0
    assert nats_token("nats://127.0.0.1:4222", data) is None
    assert read_token(data, names.NATS_TOKEN_FILE) == token


def test_a_folder_it_cannot_write_is_one_clear_line(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    done = nats_auth(blocked / "data", "nats://nats:4222")
    assert done.returncode != 0
    assert done.stderr.startswith("Error: cannot lock NATS in") and "Traceback" not in done.stderr


def test_a_bad_url_or_a_broken_endpoints_file_is_refused_and_nothing_written(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for url, *also in (
        ("nats",),
        ("http://nats:4222",),
        ("nats://nats",),
        ("nats://nats:4222,nats://:1",),
        ("nats://nats:4222", "127.0.0.1:4222"),
    ):
        done = nats_auth(data, url, *also)
        assert done.returncode != 0 and "is not a NATS server URL" in done.stderr, url
    (data / "endpoints.json").write_text("{not json")
    done = nats_auth(data, "nats://nats:4222")
    assert done.returncode != 0 and "cannot lock NATS in" in done.stderr
    assert (data / "endpoints.json").read_text() == "{not json"
    assert sorted(p.name for p in data.iterdir()) == ["endpoints.json"]
