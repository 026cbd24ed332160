"""overlayd renders only what a change touches: a profile edit its nodes, an overlay edit its
users, an image build the nodes booting it; the manifests of every other node keep their KV
revision. An event delivered twice changes nothing; a deleted node loses its manifest; a bulk
add is a few waves. Real nats-server, registry and overlayd processes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from libs.common import names, subjects
from libs.common.models.events import ChangeEvent
from libs.common.models.image import ImageBuilt, ImageMeta
from libs.common.models.overlay import OverlayEvent
from tests.overlayd.helpers import (
    WAIT,
    NodeEvents,
    Stack,
    following_boot,
    node_events,
    revisions,
    settled,
    start_stack,
    status,
)
from tests.stack import connected_bus, nats_client
from tests.waiting import eventually

DEVICE = {"device": "eth0", "netmask": "255.255.0.0"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with start_stack(tmp_path_factory.mktemp("incremental")) as running:
        yield running


async def add_nodes(stack: Stack, names_: str, ipaddr: str, **fields: object) -> None:
    async with stack.registry_api() as registry:
        body = {"names": names_, "ipaddr": ipaddr, "network_devices": {"default": DEVICE}}
        r = await registry.post("/nodes:bulk", json=body | fields)
        assert r.status_code == 201, r.text


def unchanged(before: dict[str, int], after: dict[str, int], nodes: set[str]) -> list[str]:
    return sorted(n for n in nodes if after.get(n) != before.get(n))


async def test_a_profile_edit_renders_its_nodes_only(stack: Stack) -> None:
    async with stack.registry_api() as registry:
        r = await registry.put("/profiles/gpu", json={"kernel": {"args": ["gpu=on"]}})
        assert r.status_code in (200, 201), r.text
    await add_nodes(stack, "pa[01-10]", "10.1.0.1", profiles=["default", "gpu"])
    await add_nodes(stack, "pb[01-10]", "10.1.1.1")
    await settled(stack)
    before = await revisions(stack)
    users = {f"pa{i:02d}" for i in range(1, 11)}
    async with following_boot(stack.nats_url) as boot, stack.registry_api() as registry:
        r = await registry.patch("/profiles/gpu", json={"kernel": {"args": ["gpu=off"]}})
        assert r.status_code == 200, r.text
        await boot.until(lambda found: all("gpu=off" in found[n].kernel_args for n in users))
    await settled(stack)
    after = await revisions(stack)
    assert unchanged(before, after, users) == sorted(users)
    others = set(before) - users
    assert others and unchanged(before, after, others) == []


async def test_an_overlay_edit_renders_its_users_only(stack: Stack) -> None:
    async with stack.overlayd_api() as api:
        r = await api.post("/overlays", json={"name": "site1", "empty": True})
        assert r.status_code == 201, r.text
        r = await api.put("/overlays/site1/files/etc/site.j2", content=b"v1 {{ node.name }}\n")
        assert r.status_code == 200, r.text
    await add_nodes(stack, "oa[01-05]", "10.2.0.1", system_overlay=["site1"])
    await add_nodes(stack, "ob[01-05]", "10.2.1.1")
    async with following_boot(stack.nats_url) as boot:
        await boot.until(lambda found: all(f"oa0{i}" in found for i in range(1, 6)))
    await settled(stack)
    before = await revisions(stack)
    users = {f"oa0{i}" for i in range(1, 6)}
    async with following_boot(stack.nats_url) as boot, stack.overlayd_api() as api:
        last = {n: boot.manifests[n].system_digests[-1] for n in users}
        r = await api.put("/overlays/site1/files/etc/site.j2", content=b"v2 {{ node.name }}\n")
        assert r.status_code == 200, r.text
        await boot.until(lambda found: all(found[n].system_digests[-1] != last[n] for n in users))
        r = await api.get("/overlays/site1/files/etc/site", params={"render": "oa03"})
        assert r.content == b"v2 oa03\n"
    await settled(stack)
    after = await revisions(stack)
    assert unchanged(before, after, users) == sorted(users)
    assert unchanged(before, after, set(before) - users) == []


async def test_an_image_build_renders_the_nodes_booting_it(stack: Stack) -> None:
    await add_nodes(stack, "ia[01-03]", "10.3.0.1", image="rocky-9.4")
    await add_nodes(stack, "ib[01-03]", "10.3.1.1")
    await settled(stack)
    before = await revisions(stack)
    users = {"ia01", "ia02", "ia03"}
    meta = ImageMeta(
        name="rocky-9.4",
        source="docker://rocky:9.4",
        image_digest="a" * 64,
        kernel_digest="b" * 64,
        kernel_version="5.14.0",
        size=1,
        built_at=1.0,
    )
    async with (
        connected_bus(stack.nats_url, "test-builder") as bus,
        following_boot(stack.nats_url) as boot,
    ):
        assert boot.manifests["ia01"].image == "rocky-9.4"
        assert boot.manifests["ia01"].kernel_digest is None  # not built yet
        revision = await (await bus.bucket(names.BUCKET_IMAGES, ImageMeta)).put("rocky-9.4", meta)
        built = ImageBuilt(
            name="rocky-9.4", job="j1", kind="import", revision=revision,
            image_digest=meta.image_digest, kernel_digest=meta.kernel_digest,
            kernel_version="5.14.0", source_digest=None, size=1, files=1,
            chunks_total=1, chunks_reused=0, build_seconds=0.1, seconds=0.1,
            changed=["image_digest"],
        )  # fmt: skip
        await bus.publish(subjects.image("rocky-9.4", "built"), built)
        await boot.until(
            lambda found: all(
                found[n].kernel_digest == "b" * 64 and found[n].image_digest == "a" * 64
                for n in users
            )
        )
    await settled(stack)
    after = await revisions(stack)
    assert unchanged(before, after, set(before) - users) == []


async def test_an_event_delivered_twice_changes_nothing(stack: Stack) -> None:
    await add_nodes(stack, "ea[01-03]", "10.4.0.1")
    done = await settled(stack)
    before = await revisions(stack)
    async with node_events(stack.nats_url) as events:
        async with nats_client(stack.nats_url) as nc:
            js = nc.jetstream()
            node = ChangeEvent(kind="node", name="ea02", action="updated", revision=before["ea02"])
            profile = ChangeEvent(kind="profile", name="default", action="updated", revision=1)
            overlay = OverlayEvent(name="hosts", action="updated", revision=1)
            for subject, event in (
                (subjects.node("ea02", "updated"), node),
                (subjects.profile("default", "updated"), profile),
                (subjects.overlay("hosts", "updated"), overlay),
            ):
                await js.publish(subject, msgspec.json.encode(event))
        again = await wait_for_waves(stack, done["waves"])
        assert again["last"]["nodes_rendered"] > 0
        assert await revisions(stack) == before
        assert no_rendered(events)


async def wait_for_waves(stack: Stack, waves: int) -> dict[str, Any]:
    """Settled, after at least one more wave than `waves`."""
    return await eventually(
        lambda: settled(stack),
        f"overlayd settled after wave {waves}",
        within=WAIT,
        until=lambda found: found["waves"] > waves,
        every=0,  # each look waits until overlayd settles
    )


def no_rendered(events: NodeEvents) -> bool:
    return not events.rendered and not events.failed


async def test_a_deleted_node_loses_its_manifest(stack: Stack) -> None:
    await add_nodes(stack, "da[01-02]", "10.5.0.1")
    async with following_boot(stack.nats_url) as boot, stack.registry_api() as registry:
        await boot.until(lambda found: "da02" in found)
        r = await registry.delete("/nodes/da02")
        assert r.status_code == 204, r.text
        await boot.until(lambda found: "da02" not in found)
        assert "da01" in boot.manifests
    async with stack.overlayd_api() as api:
        assert (await api.get("/nodes/da02/manifest")).status_code == 404


async def test_a_bulk_add_is_a_few_waves(stack: Stack) -> None:
    start = await settled(stack)
    await add_nodes(stack, "ba[0001-1000]", "10.6.0.1")
    async with following_boot(stack.nats_url) as boot:
        await boot.until(lambda found: all(f"ba{i:04d}" in found for i in range(1, 1001)))
    done = await settled(stack)
    waves = int(done["waves"]) - int(start["waves"])
    print(f"\n1,000 nodes added in one bulk: {waves} waves (follow-ups included)")
    assert waves <= 50  # coalesced: far fewer than one per node, however the burst is timed
    assert (await status(stack))["failing"] == 0
