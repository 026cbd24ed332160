"""`wolfctl node status [-w] [-o json]` against the real bootd."""

from __future__ import annotations

import asyncio
import json

import httpx
import msgspec

from libs.common import subjects
from libs.common.bus.connection import Bus
from libs.common.bus.server import NatsServer
from libs.common.models.boot_stage import BootStage
from tests.bootd.conftest import Bootd, boot_node, fresh_mac, script_booting
from tests.cli import cli_running, run_cli_async
from tests.stack import nats_client


def wolfctl_env(bootd: Bootd) -> dict[str, str]:
    return {
        "WOLFPACK_BOOTD_URL": bootd.url,
        "WOLFPACK_TOKEN": bootd.token,
        "WOLFPACK_NATS": bootd.nats_url,
    }


async def booted(bootd: Bootd, bus: Bus, http: httpx.AsyncClient, node: str) -> str:
    mac = fresh_mac()
    await boot_node(bus, bootd.store, node, mac)
    await script_booting(http, mac)
    return mac


async def test_status_table_and_json(bootd: Bootd, bus: Bus, http: httpx.AsyncClient) -> None:
    await booted(bootd, bus, http, "ws1")
    env = wolfctl_env(bootd)
    out = await run_cli_async("wolfctl", "node", "status", "-o", "json", env=env)
    assert out.returncode == 0, out.stderr
    mine = next(s for s in json.loads(out.stdout) if s["node"] == "ws1")
    assert mine["stage"] == "ipxe" and mine["remote"].startswith("127.0.0.1:")
    table = await run_cli_async("wolfctl", "node", "status", env=env)
    assert table.returncode == 0, table.stderr
    header, *lines = table.stdout.splitlines()
    assert header.split() == ["NODE", "STAGE", "WHEN", "FROM"]
    assert any(line.split()[:2] == ["ws1", "ipxe"] for line in lines)
    bad = await run_cli_async("wolfctl", "node", "status", env={**env, "WOLFPACK_TOKEN": "wrong"})
    assert bad.returncode != 0 and "wrong token" in bad.stderr


async def test_status_watch_follows_events(bootd: Bootd, bus: Bus, http: httpx.AsyncClient) -> None:
    watch = ("node", "status", "-w", "-o", "json")
    async with cli_running("wolfctl", *watch, env=wolfctl_env(bootd)) as proc:
        assert proc.stdout is not None
        # The snapshot comes first (a JSON list), then one event per line.
        async with asyncio.timeout(30):
            first = await proc.stdout.readline()
            while not first.rstrip().endswith(b"]") and first.strip() != b"[]":
                first = await proc.stdout.readline()
            await booted(bootd, bus, http, "ws2")
            while True:
                line = await proc.stdout.readline()
                assert line, "wolfctl node status -w ended"
                if b'"node":"ws2"' in line:
                    break
    event = json.loads(line)
    assert event["stage"] == "ipxe"


async def _line_with(stream: asyncio.StreamReader, needle: bytes) -> bytes:
    while True:
        line = await stream.readline()
        assert line, f"wolfctl node status -w ended before printing {needle!r}"
        if needle in line:
            return line


async def test_status_watch_rides_out_a_nats_restart_and_shows_what_it_missed(
    bootd: Bootd, bus: Bus, http: httpx.AsyncClient, nats_server: NatsServer
) -> None:
    # wolfctl follows a NATS of the test's own, which it can stop and start; bootd (the
    # snapshot and its timelines) stays up on its own NATS.
    env = {**wolfctl_env(bootd), "WOLFPACK_NATS": nats_server.url}
    async with (
        cli_running("wolfctl", "node", "status", "-w", "-o", "json", env=env) as proc,
        # A bare client that reconnects for as long as it takes: across the restart of the
        # test's NATS it publishes stages straight to wolfctl, as bootd would.
        nats_client(nats_server.url, max_reconnect_attempts=-1) as publisher,
    ):
        assert proc.stdout is not None and proc.stderr is not None

        async def publish(node: str) -> None:
            event = BootStage(node=node, stage="kernel", file="/kernel")
            await publisher.publish(subjects.node(node, "boot"), msgspec.json.encode(event))
            await publisher.flush()

        async with asyncio.timeout(60):
            await _line_with(proc.stdout, b"]")  # the snapshot
            await publish("ws-live")
            assert b'"stage":"kernel"' in await _line_with(proc.stdout, b'"node":"ws-live"')
            await nats_server.stop()
            await _line_with(proc.stderr, b"lost NATS")
            # A node boots while wolfctl is away from NATS: bootd's timeline keeps it.
            await booted(bootd, bus, http, "ws-gap")
            await nats_server.start()
            await _line_with(proc.stderr, b"reconnected to NATS")
            caught_up = await _line_with(proc.stdout, b'"node":"ws-gap"')
            assert json.loads(caught_up)["stage"] == "ipxe"
            # bootd publishes what it held while NATS was away once it is back: the same
            # event again must not be shown twice.
            await publisher.publish(subjects.node("ws-gap", "boot"), caught_up.strip())
            await publish("ws-after")
            after = await proc.stdout.readline()
            assert b'"node":"ws-after"' in after, f"shown twice, or out of order: {after!r}"
