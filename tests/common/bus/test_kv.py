"""Typed KV buckets on a real nats-server: compare-and-set, revisions, watch, bulk reads."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

import msgspec
import pytest

from libs.common import names
from libs.common.bus.connection import Bus
from libs.common.bus.kv import Bucket
from libs.common.bus.server import NatsServer
from libs.common.errors import Conflict, Invalid, NotFound
from libs.common.models.node import Node
from tests.waiting import eventually

WAIT = 5.0


class Image(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    size: int = 0
    revision: int = 0


class Plain(msgspec.Struct):
    value: str


@pytest.fixture
async def nodes(bus: Bus) -> Bucket[Node]:
    return await bus.bucket(names.BUCKET_NODES, Node)


async def test_create_then_get_carries_the_revision(bus: Bus, nodes: Bucket[Node]) -> None:
    revision = await nodes.create("n1", Node(comment="rack 4", revision=99))
    node = await nodes.get("n1")
    assert node.comment == "rack 4"
    assert node.revision == revision
    # The revision is the store's, never the stored bytes'.
    raw = await (await bus.js.key_value(names.BUCKET_NODES)).get("n1")
    assert b"revision" not in (raw.value or b"")


async def test_create_of_an_existing_key_is_a_conflict(nodes: Bucket[Node]) -> None:
    await nodes.create("n1", Node())
    with pytest.raises(Conflict, match="n1 already exists in nodes"):
        await nodes.create("n1", Node(comment="again"))


async def test_update_needs_the_current_revision(nodes: Bucket[Node]) -> None:
    first = await nodes.create("n1", Node(comment="a"))
    second = await nodes.update("n1", Node(comment="b"), first)
    assert second > first
    with pytest.raises(Conflict, match=f"stale revision: expected {first}, current {second}"):
        await nodes.update("n1", Node(comment="c"), first)
    assert (await nodes.get("n1")).comment == "b"


async def test_update_of_a_missing_key_is_not_found(nodes: Bucket[Node]) -> None:
    with pytest.raises(NotFound, match="ghost not found in nodes"):
        await nodes.update("ghost", Node(), 1)


async def test_racing_updates_exactly_one_wins(nodes: Bucket[Node]) -> None:
    revision = await nodes.create("n1", Node())
    results = await asyncio.gather(
        *(nodes.update("n1", Node(comment=str(i)), revision) for i in range(5)),
        return_exceptions=True,
    )
    assert sum(isinstance(r, int) for r in results) == 1
    assert sum(isinstance(r, Conflict) for r in results) == 4


async def test_put_overwrites_whatever_is_there(nodes: Bucket[Node]) -> None:
    await nodes.put("n1", Node(comment="a"))
    revision = await nodes.put("n1", Node(comment="b"))
    node = await nodes.get("n1")
    assert (node.comment, node.revision) == ("b", revision)


async def test_delete(nodes: Bucket[Node]) -> None:
    with pytest.raises(NotFound):
        await nodes.delete("n1")
    first = await nodes.create("n1", Node())
    second = await nodes.update("n1", Node(comment="x"), first)
    with pytest.raises(Conflict, match=f"stale revision: expected {first}, current {second}"):
        await nodes.delete("n1", revision=first)
    await nodes.delete("n1", revision=second)
    with pytest.raises(NotFound, match="n1 not found in nodes"):
        await nodes.get("n1")
    assert await nodes.get_or_none("n1") is None
    with pytest.raises(NotFound):
        await nodes.delete("n1")


async def test_a_deleted_key_can_be_created_again(nodes: Bucket[Node]) -> None:
    await nodes.create("n1", Node(comment="old"))
    await nodes.delete("n1")
    revision = await nodes.create("n1", Node(comment="new"))
    node = await nodes.get("n1")
    assert (node.comment, node.revision) == ("new", revision)


async def test_keys_and_items_leave_out_deleted_keys(nodes: Bucket[Node]) -> None:
    assert await nodes.keys() == []
    assert await nodes.items() == {}
    revisions = {name: await nodes.create(name, Node(comment=name)) for name in ("a", "b", "c")}
    await nodes.delete("b")
    assert sorted(await nodes.keys()) == ["a", "c"]
    items = await nodes.items()
    assert {k: (v.comment, v.revision) for k, v in items.items()} == {
        "a": ("a", revisions["a"]),
        "c": ("c", revisions["c"]),
    }


async def test_items_of_ten_thousand_keys_reads_each_once_in_a_few_requests(bus: Bus) -> None:
    bucket = await bus.bucket(names.BUCKET_NODES, Node)
    kv = await bus.js.key_value(names.BUCKET_NODES)
    payload = msgspec.json.encode(Node(comment="compute", profiles=["default"]))
    for start in range(0, 10_000, 1_000):
        await asyncio.gather(*(kv.put(f"n{i:05}", payload) for i in range(start, start + 1_000)))

    before = dict(bus.nc.stats)
    items = await bucket.items()
    sent = bus.nc.stats["out_msgs"] - before["out_msgs"]
    received = bus.nc.stats["in_msgs"] - before["in_msgs"]

    assert len(items) == 10_000
    assert items["n09999"].profiles == ["default"]
    assert len({node.revision for node in items.values()}) == 10_000
    # One watcher (a handful of requests), not a get per key: 10,000 round trips would be what
    # makes a listing slow. How fast a listing is, is measured by bench/registry.py.
    assert sent < 100, f"{sent} requests for 10,000 keys"
    assert received < 10_000 + 100, f"{received} messages for 10,000 keys"


async def test_watch_gives_current_values_then_changes(nodes: Bucket[Node]) -> None:
    r1 = await nodes.create("a", Node(comment="first"))
    ready = asyncio.Event()
    seen: asyncio.Queue[tuple[str, str | None, int]] = asyncio.Queue()

    async def follow() -> None:
        async with contextlib.aclosing(nodes.watch(ready)) as changes:
            async for key, node, revision in changes:
                await seen.put((key, node.comment if node else None, revision))

    watching = asyncio.create_task(follow())
    await asyncio.wait_for(ready.wait(), WAIT)
    assert seen.get_nowait() == ("a", "first", r1)

    r2 = await nodes.create("b", Node(comment="second"))
    r3 = await nodes.update("a", Node(comment="changed"), r1)
    await nodes.delete("b")
    got = [await asyncio.wait_for(seen.get(), WAIT) for _ in range(3)]
    watching.cancel()
    assert got[:2] == [("b", "second", r2), ("a", "changed", r3)]
    assert got[2][:2] == ("b", None)
    assert got[2][2] > r3


async def test_frozen_models_get_their_revision_too(bus: Bus) -> None:
    images = await bus.bucket(names.BUCKET_IMAGES, Image)
    revision = await images.create("rocky", Image(name="rocky", size=5))
    assert await images.get("rocky") == Image(name="rocky", size=5, revision=revision)
    assert (await images.items())["rocky"].revision == revision


async def test_models_without_revision_work(bus: Bus) -> None:
    bucket = await bus.bucket(names.BUCKET_OVERLAYS, Plain)
    await bucket.put("wwinit", Plain("x"))
    assert await bucket.get("wwinit") == Plain("x")


async def test_bad_keys_and_unreadable_values_are_invalid(bus: Bus, nodes: Bucket[Node]) -> None:
    with pytest.raises(Invalid, match="invalid key"):
        await nodes.create("no spaces", Node())
    kv = await bus.js.key_value(names.BUCKET_NODES)
    await kv.put("broken", b'{"comment": 5}')
    with pytest.raises(Invalid, match="broken in nodes is unreadable"):
        await nodes.get("broken")
    await nodes.put("fine", Node())
    assert list(await nodes.items()) == ["fine"]


async def test_items_never_misses_values_written_just_before(nodes: Bucket[Node]) -> None:
    # nats.py's own "initial values done" marker can overtake the values; repeat to catch it.
    for round_ in range(30):
        await nodes.put(f"n{round_}", Node())
        assert len(await nodes.keys()) == round_ + 1


async def test_an_unknown_bucket_is_not_found(bus: Bus) -> None:
    with pytest.raises(NotFound, match="no KV bucket 'nope'"):
        await bus.bucket("nope", Plain)


async def test_a_watch_follows_the_bucket_across_a_nats_server_kill(
    nats_server: NatsServer, bus: Bus, nodes: Bucket[Node]
) -> None:
    # nats.py alone notices a lost watch only after 10 s of missed heartbeats, and can go
    # silent for good: the watch must start again at the reconnect and replay nothing old.
    await nodes.put("a", Node(comment="1"))
    await nodes.put("b", Node(comment="1"))
    seen: asyncio.Queue[tuple[str, str | None]] = asyncio.Queue()
    ready = asyncio.Event()

    async def follow() -> None:
        async with contextlib.aclosing(nodes.watch(ready)) as changes:
            async for key, value, _ in changes:
                seen.put_nowait((key, value.comment if value else None))

    task = asyncio.create_task(follow())
    try:
        await ready.wait()
        assert sorted([seen.get_nowait(), seen.get_nowait()]) == [("a", "1"), ("b", "1")]
        assert nats_server.pid is not None
        os.kill(nats_server.pid, signal.SIGKILL)
        await nats_server.exited()
        await nats_server.start()  # same port and store
        await _until_stored(nodes, "a", Node(comment="2"))
        await nodes.delete("b")
        async with asyncio.timeout(WAIT):
            assert await seen.get() == ("a", "2")
            assert await seen.get() == ("b", None)
        assert seen.empty()  # b's old value was not passed on again
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _until_stored(nodes: Bucket[Node], key: str, value: Node) -> None:
    """Put `value` once: a put whose ack timed out may still have been stored, and storing it
    again would be a second change for the watch."""

    async def put_unless_stored() -> bool:
        stored = await nodes.get_or_none(key)
        if stored is None or msgspec.structs.replace(stored, revision=0) != value:
            await nodes.put(key, value)
        return True

    await eventually(
        put_unless_stored,
        f"{key} stored once nats-server is back",
        within=3 * WAIT,
        ignoring=(Exception,),  # the client is still reconnecting: nothing to await but a retry
    )
