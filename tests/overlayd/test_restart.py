"""overlayd killed (SIGKILL) while edits keep coming; while it is down, nodes added and
deleted, a node changed in KV with no event (as if its event were lost) and KV `boot` tampered
with; started again: KV `boot` converges to exactly what a fresh full render of the registry
gives (computed here with the engine)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from libs.common import names
from libs.common.models.node import Node
from libs.common.models.overlay import BootManifest
from tests.overlayd.helpers import (
    Stack,
    following_boot,
    fresh_manifests,
    settled,
    start_stack,
    without_revisions,
)
from tests.stack import connected_bus

DEVICE = {"device": "eth0", "netmask": "255.255.0.0"}
NODES = 100


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with start_stack(tmp_path_factory.mktemp("restart")) as running:
        yield running


class Editor:
    """Edits node addresses one after the other (each address new) until stopped."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.done = 0
        self.stop = asyncio.Event()
        self.progress = asyncio.Event()

    async def run(self) -> None:
        async with self.stack.registry_api() as registry:
            while not self.stop.is_set():
                node = f"r{self.done % (NODES - 1) + 1:03d}"
                address = f"10.8.{self.done // 250}.{self.done % 250 + 1}"
                body = {"network_devices": {"default": {"ipaddr": address}}}
                r = await registry.patch(f"/nodes/{node}", json=body)
                assert r.status_code == 200, r.text
                self.done += 1
                self.progress.set()

    async def until(self, count: int) -> None:
        while self.done < count:
            self.progress.clear()
            await self.progress.wait()


async def test_a_killed_overlayd_converges_to_a_fresh_render(stack: Stack, tmp_path: Path) -> None:
    async with stack.registry_api() as registry:
        body = {
            "names": f"r[001-{NODES:03d}]",
            "ipaddr": "10.7.0.1",
            "network_devices": {"default": DEVICE},
        }
        assert (await registry.post("/nodes:bulk", json=body)).status_code == 201
        r = await registry.put("/nodes/lone", json={"system_overlay": ["hostname"]})
        assert r.status_code == 201, r.text
    await settled(stack)

    editor = Editor(stack)
    editing = asyncio.create_task(editor.run())
    try:
        await editor.until(10)
        async with stack.registry_api() as registry:
            r = await registry.patch("/profiles/default", json={"kernel": {"args": ["quiet"]}})
            assert r.status_code == 200, r.text
        await editor.until(20)
        stack.kill_overlayd()
        await editor.until(40)
        async with stack.registry_api() as registry:  # while it is down
            assert (await registry.delete(f"/nodes/r{NODES:03d}")).status_code == 204
            r = await registry.put("/nodes/r999", json={"profiles": ["default"]})
            assert r.status_code == 201, r.text
        await change_behind_its_back(stack)
        await asyncio.to_thread(stack.start_overlayd)
        await editor.until(editor.done + 20)
    finally:
        editor.stop.set()
        await editing

    expected = await fresh_manifests(stack, tmp_path)
    assert f"r{NODES:03d}" not in expected and "r999" in expected
    async with following_boot(stack.nats_url) as boot:
        try:
            await boot.until(lambda found: without_revisions(found) == expected, within=120)
        except TimeoutError:
            differ = sorted(
                n for n in set(expected) | set(boot.manifests)
                if without_revisions(boot.manifests).get(n) != expected.get(n)
            )  # fmt: skip
            pytest.fail(f"KV boot differs from a fresh render for {differ[:10]}")
    assert all(m.kernel_args == ["quiet"] for n, m in boot.manifests.items() if n != "lone")
    assert "ghost" not in boot.manifests
    # Its new shared overlay (the agent) next to its own one (hostname): two archives.
    assert len(boot.manifests["lone"].system_digests) == 2


async def change_behind_its_back(stack: Stack) -> None:
    """What only a full render at start-up repairs: a node changed with no event, a manifest
    of no node, a wrong manifest. `lone` reads no other node (no hosts), so no other node's
    change renders it again."""
    async with connected_bus(stack.nats_url, "test-tamper") as bus:
        nodes = await bus.bucket(names.BUCKET_NODES, Node)
        lone = await nodes.get("lone")
        await nodes.put(
            "lone", msgspec.structs.replace(lone, system_overlay=["hostname", "wwclient"])
        )
        boot = await bus.bucket(names.BUCKET_BOOT, BootManifest)
        await boot.put("ghost", BootManifest(node="ghost", hwaddrs=["aa:bb:cc:dd:ee:ff"]))
        wrong = await boot.get("r010")
        await boot.put("r010", msgspec.structs.replace(wrong, system_digests=["0" * 64]))
