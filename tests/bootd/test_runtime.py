"""`/runtime/{mac}`: only the owning node, with its asset key, from a privileged port (who
gets which blob at `/blobs`: test_blob_access.py)."""

from __future__ import annotations

import asyncio
import hashlib

import httpx
import pytest

from libs.common import subjects
from libs.common.bus.connection import Bus
from libs.common.models.boot_stage import BootStage
from tests.bootd.conftest import Bootd, boot_node, fresh_mac, script_booting
from tests.bootd.rawhttp import get_from_port
from tests.needs import need_root

PRIVILEGED = (700, 800)


@pytest.fixture(autouse=True)
def _privileged_ports_need_root() -> None:
    need_root("binding a privileged source port")


async def test_privileged_port_gets_the_runtime_overlay(
    bootd: Bootd, bus: Bus, http: httpx.AsyncClient
) -> None:
    mac = fresh_mac()
    files = await boot_node(bus, bootd.store, "rt1", mac)
    await script_booting(http, mac)
    events = await bus.subscribe(subjects.node("rt1", "boot"), BootStage)
    try:
        status, body = await get_from_port(f"{bootd.url}/runtime/{mac.upper()}", *PRIVILEGED)
        assert status == 200
        assert body == files.runtime
        async with asyncio.timeout(10):
            async for _, event in events:
                if event.stage == "runtime":
                    break
        assert event.ok and event.bytes == len(files.runtime) and event.hwaddr == mac
    finally:
        await events.stop()


async def test_unprivileged_port_is_refused_with_an_event(
    bootd: Bootd, bus: Bus, http: httpx.AsyncClient
) -> None:
    mac = fresh_mac()
    await boot_node(bus, bootd.store, "rt2", mac)
    await script_booting(http, mac)
    events = await bus.subscribe(subjects.node("rt2", "boot"), BootStage)
    try:
        answer = await http.get(f"/runtime/{mac}")
        assert answer.status_code == 403
        assert "privileged source port" in answer.json()["error"]
        async with asyncio.timeout(10):
            async for _, event in events:
                if event.stage == "runtime":
                    break
        assert not event.ok and "privileged" in event.error
    finally:
        await events.stop()


async def test_unknown_mac_is_refused(bootd: Bootd) -> None:
    status, body = await get_from_port(f"{bootd.url}/runtime/{fresh_mac()}", *PRIVILEGED)
    assert status == 403
    assert b"no node owns MAC" in body


async def test_node_a_with_its_key_gets_403_for_node_bs_overlay(
    bootd: Bootd, bus: Bus, http: httpx.AsyncClient
) -> None:
    mac_a, mac_b, mac_c = fresh_mac(), fresh_mac(), fresh_mac()
    a = await boot_node(bus, bootd.store, "rt3a", mac_a, asset_key="a-key")
    b = await boot_node(bus, bootd.store, "rt3b", mac_b, asset_key="b-key")
    await boot_node(bus, bootd.store, "rt3c", mac_c)  # no asset key of its own
    for mac, key in ((mac_a, "a-key"), (mac_b, "b-key"), (mac_c, None)):
        await script_booting(http, mac, key)
    url = f"{bootd.url}/runtime"
    status, body = await get_from_port(f"{url}/{mac_a}?assetkey=a-key", *PRIVILEGED)
    assert status == 200 and body == a.runtime
    # Node a, with its own key, asking for node b's overlay: understood, and refused.
    status, body = await get_from_port(f"{url}/{mac_b}?assetkey=a-key", *PRIVILEGED)
    assert status == 403 and b"another node's" in body and b.runtime not in body
    # ... even for a node with no asset key at all.
    status, body = await get_from_port(f"{url}/{mac_c}?assetkey=a-key", *PRIVILEGED)
    assert status == 403
    # No key, or a key no node has: not authenticated.
    status, body = await get_from_port(f"{url}/{mac_b}", *PRIVILEGED)
    assert status == 401 and b"asset key" in body
    status, body = await get_from_port(f"{url}/{mac_b}?assetkey=wrong", *PRIVILEGED)
    assert status == 401 and b"wrong asset key" in body
    status, body = await get_from_port(f"{url}/{mac_b}?assetkey=b-key", *PRIVILEGED)
    assert status == 200 and body == b.runtime
    # The callback route applies the same rules: nothing is pushed anywhere.
    r = await http.get(f"/runtime/{mac_b}", params={"assetkey": "a-key", "callback": 900})
    assert r.status_code == 403 and r.json()["field"] == "assetkey"


async def listen_once(port: int) -> tuple[asyncio.Future[bytes], asyncio.Server]:
    """A listener on `port` (privileged: root only) that collects what one connection sends."""
    received: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def take(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.set_result(await reader.read())
        writer.close()

    server = await asyncio.start_server(take, "127.0.0.1", port)
    return received, server


async def listen_privileged() -> tuple[asyncio.Future[bytes], asyncio.Server, int]:
    for port in range(900, 1000):
        try:
            received, server = await listen_once(port)
        except OSError:  # taken
            continue
        return received, server, port
    raise AssertionError("no free port in 900-999")


async def test_a_node_listening_on_a_privileged_port_gets_it_pushed(
    bootd: Bootd, bus: Bus, http: httpx.AsyncClient
) -> None:
    """busybox's wget cannot bind a privileged source port, its nc can listen on one."""
    mac = fresh_mac()
    files = await boot_node(bus, bootd.store, "rt5", mac)
    await script_booting(http, mac)
    received, server, port = await listen_privileged()
    events = await bus.subscribe(subjects.node("rt5", "boot"), BootStage)
    try:
        r = await http.get(f"/runtime/{mac}", params={"callback": port})
        assert r.status_code == 200, r.text
        assert await asyncio.wait_for(received, 10) == files.runtime
        assert r.json() == {
            "digest": hashlib.sha256(files.runtime).hexdigest(),
            "size": len(files.runtime),
        }
        async with asyncio.timeout(10):
            async for _, event in events:
                if event.stage == "runtime":
                    break
        assert event.ok and event.bytes == len(files.runtime) and "callback" in event.file
    finally:
        server.close()
        await events.stop()


async def test_a_callback_to_an_unprivileged_port_or_nobody_is_refused(
    bootd: Bootd, bus: Bus, http: httpx.AsyncClient
) -> None:
    mac = fresh_mac()
    await boot_node(bus, bootd.store, "rt6", mac)
    await script_booting(http, mac)
    received, server = await listen_once(0)
    port = server.sockets[0].getsockname()[1]
    try:
        r = await http.get(f"/runtime/{mac}", params={"callback": port})
        assert r.status_code == 403 and r.json()["field"] == "port"
        assert not received.done()  # nothing was sent to a port anyone may open
    finally:
        server.close()
    r = await http.get(f"/runtime/{mac}", params={"callback": "nope"})
    assert r.status_code == 400 and r.json()["field"] == "callback"
    r = await http.get(f"/runtime/{mac}", params={"callback": 1})  # tcpmux: nobody listens
    assert r.status_code == 409 and "nothing listens" in r.json()["error"]
