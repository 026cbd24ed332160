"""Every transfer is a `tftp` boot stage on NATS, named after the node with that address."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from libs.common import names, subjects
from libs.common.bus.connection import Bus
from libs.common.bus.subscription import Subscription
from libs.common.models.boot_stage import BootStage
from libs.common.models.node import NetDev, Node
from tests.stack import connected_bus
from tests.tftpd.tftpd_helpers import IPXE, RawClient, Tftpd, need, request, start_tftpd
from tests.waiting import eventually

NODE_IP = "127.0.0.2"


async def _seed(nats_url: str) -> None:
    async with connected_bus(nats_url, "seed") as bus:
        nodes = await bus.bucket(names.BUCKET_NODES, Node)
        node = Node(name="n1", network_devices={"default": NetDev(ipaddr=NODE_IP)})
        await nodes.put("n1", node)


@pytest.fixture(scope="module")
def tftpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tftpd]:
    need()
    with start_tftpd(tmp_path_factory.mktemp("tftpd"), seed=_seed) as server:
        yield server


@pytest.fixture
def nats_url(tftpd: Tftpd) -> str:
    """The `bus` fixture connects to the NATS tftpd publishes on."""
    return tftpd.nats_url


@contextlib.asynccontextmanager
async def watching(bus: Bus, node: str = "*") -> AsyncIterator[Subscription[BootStage]]:
    sub = await bus.subscribe(subjects.node(node, "boot"), BootStage)
    try:
        yield sub
    finally:
        await sub.stop()


async def next_event(sub: Subscription[BootStage]) -> tuple[str, BootStage]:
    async with asyncio.timeout(15):
        return await anext(sub)


def _download(tftpd: Tftpd, name: str, local: str = "127.0.0.1") -> bytes:
    with RawClient(tftpd, local=local) as client:
        return client.download(name, blksize="1468", tsize="0")[0]


async def test_a_transfer_from_a_known_address_names_the_node(tftpd: Tftpd, bus: Bus) -> None:
    async with watching(bus) as sub:
        data = await asyncio.to_thread(_download, tftpd, "undionly.kpxe", NODE_IP)
        subject, event = await next_event(sub)
    assert data == (IPXE / "undionly.kpxe").read_bytes()
    assert subject == "wolfpack.node.n1.boot"
    assert (event.node, event.stage, event.file, event.ok) == ("n1", "tftp", "undionly.kpxe", True)
    assert event.bytes == len(data)
    assert event.remote.startswith(f"{NODE_IP}:")
    assert event.error == ""


async def test_an_unknown_address_is_node_unknown(tftpd: Tftpd, bus: Bus) -> None:
    async with watching(bus) as sub:
        await asyncio.to_thread(_download, tftpd, "ipxe.efi")
        subject, event = await next_event(sub)
    assert subject == "wolfpack.node.unknown.boot"
    assert (event.node, event.file, event.ok) == ("unknown", "ipxe.efi", True)


async def test_a_refused_request_is_a_failed_stage(tftpd: Tftpd, bus: Bus) -> None:
    async with watching(bus) as sub:
        with pytest.raises(RuntimeError, match="error 0002"):
            await asyncio.to_thread(_download, tftpd, "../../etc/passwd")
        _, event = await next_event(sub)
    assert (event.ok, event.file, event.bytes) == (False, "../../etc/passwd", 0)
    assert "root" in event.error


async def test_the_size_probe_is_not_reported(tftpd: Tftpd, bus: Bus) -> None:
    def probe_then_fetch() -> bytes:
        with RawClient(tftpd) as client:
            client.ask(request(1, b"snponly.efi", tsize="0"))
            _, _, sender = client.receive()
            client.sock.sendto(b"\x00\x05\x00\x08probe\x00", sender)
        return _download(tftpd, "snponly.efi")

    async with watching(bus) as sub:
        await asyncio.to_thread(probe_then_fetch)
        _, event = await next_event(sub)
    # The first event is the real transfer: the probe published nothing.
    assert (event.file, event.ok) == ("snponly.efi", True)
    assert event.bytes == (IPXE / "snponly.efi").stat().st_size


async def test_a_vanished_client_is_a_failed_stage(tftpd: Tftpd, bus: Bus) -> None:
    def vanish() -> None:
        with RawClient(tftpd) as client:
            client.ask(request(1, b"ipxe.efi", timeout="1"))
            client.receive()

    async with watching(bus) as sub:
        await asyncio.to_thread(vanish)
        _, event = await next_event(sub)
    assert (event.file, event.ok) == ("ipxe.efi", False)
    assert "timed out" in event.error


async def test_a_node_added_later_is_named(tftpd: Tftpd, bus: Bus, tmp_path: Path) -> None:
    nodes = await bus.bucket(names.BUCKET_NODES, Node)
    await nodes.put("n2", Node(name="n2", network_devices={"eth": NetDev(ipaddr="127.0.0.3/8")}))
    # tftpd follows the bucket with a watch; the change lands within a moment.
    async with watching(bus) as sub:

        async def named() -> str:
            await asyncio.to_thread(_download, tftpd, "undionly.kpxe", "127.0.0.3")
            _, event = await next_event(sub)
            return event.node

        await eventually(
            named,
            "a transfer to 127.0.0.3 named n2",
            within=10,
            until=lambda node: node == "n2",
            every=0,
        )
