"""`wolfctl node status [-w] [-o json]` against the real bootd."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import httpx
import msgspec
import nats

from libs.common import subjects
from libs.common.bus.connection import Bus
from libs.common.bus.server import NatsServer
from libs.common.models.boot_stage import BootStage
from tests.bootd.conftest import Bootd, boot_node, fresh_mac


def wolfctl_env(bootd: Bootd) -> dict[str, str]:
    return {
        **os.environ,
        "WOLFPACK_BOOTD_URL": bootd.url,
        "WOLFPACK_TOKEN": bootd.token,
        "WOLFPACK_NATS": bootd.nats_url,
    }


async def wolfctl(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(subprocess.run, cmd, env=env, capture_output=True, text=True)


async def booted(bootd: Bootd, nbus: Bus, http: httpx.AsyncClient, node: str) -> str:
    mac = fresh_mac()
    await boot_node(nbus, bootd.store, node, mac)
    for _ in range(2000):
        if "kernel --name" in (await http.get(f"/ipxe/{mac}")).text:
            return mac
    raise AssertionError("manifest never loaded")


async def test_status_table_and_json(bootd: Bootd, nbus: Bus, http: httpx.AsyncClient) -> None:
    await booted(bootd, nbus, http, "ws1")
    cmd = [sys.executable, "-m", "libs.wolfctl.main", "node", "status"]
    env = wolfctl_env(bootd)
    out = await wolfctl([*cmd, "-o", "json"], env)
    assert out.returncode == 0, out.stderr
    mine = next(s for s in json.loads(out.stdout) if s["node"] == "ws1")
    assert mine["stage"] == "ipxe" and mine["remote"].startswith("127.0.0.1:")
    table = await wolfctl(cmd, env)
    assert table.returncode == 0, table.stderr
    header, *lines = table.stdout.splitlines()
    assert header.split() == ["NODE", "STAGE", "WHEN", "FROM"]
    assert any(line.split()[:2] == ["ws1", "ipxe"] for line in lines)
    bad = await wolfctl(cmd, {**env, "WOLFPACK_TOKEN": "wrong"})
    assert bad.returncode != 0 and "wrong token" in bad.stderr


async def test_status_watch_follows_events(
    bootd: Bootd, nbus: Bus, http: httpx.AsyncClient
) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "libs.wolfctl.main", "node", "status", "-w", "-o", "json",
        env=wolfctl_env(bootd), stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        # The snapshot comes first (a JSON list), then one event per line.
        async with asyncio.timeout(30):
            first = await proc.stdout.readline()
            while not first.rstrip().endswith(b"]") and first.strip() != b"[]":
                first = await proc.stdout.readline()
            await booted(bootd, nbus, http, "ws2")
            while True:
                line = await proc.stdout.readline()
                assert line, "wolfctl node status -w ended"
                if b'"node":"ws2"' in line:
                    break
        event = json.loads(line)
        assert event["stage"] == "ipxe"
    finally:
        proc.terminate()
        await proc.wait()


async def _line_with(stream: asyncio.StreamReader, needle: bytes) -> bytes:
    while True:
        line = await stream.readline()
        assert line, f"wolfctl node status -w ended before printing {needle!r}"
        if needle in line:
            return line


async def test_status_watch_rides_out_a_nats_restart_and_shows_what_it_missed(
    bootd: Bootd, nbus: Bus, http: httpx.AsyncClient, nats_server: NatsServer
) -> None:
    # wolfctl follows a NATS of the test's own, which it can stop and start; bootd (the
    # snapshot and its timelines) stays up on its own NATS.
    env = {**wolfctl_env(bootd), "WOLFPACK_NATS": nats_server.url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "libs.wolfctl.main", "node", "status", "-w", "-o", "json",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    publisher = await nats.connect(nats_server.url, max_reconnect_attempts=-1)

    async def publish(node: str) -> None:
        event = BootStage(node=node, stage="kernel", file="/kernel")
        await publisher.publish(subjects.node(node, "boot"), msgspec.json.encode(event))
        await publisher.flush()

    try:
        async with asyncio.timeout(60):
            await _line_with(proc.stdout, b"]")  # the snapshot
            await publish("ws-live")
            assert b'"stage":"kernel"' in await _line_with(proc.stdout, b'"node":"ws-live"')
            await nats_server.stop()
            await _line_with(proc.stderr, b"lost NATS")
            # A node boots while wolfctl is away from NATS: bootd's timeline keeps it.
            await booted(bootd, nbus, http, "ws-gap")
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
    finally:
        await publisher.close()
        proc.terminate()
        await proc.wait()
