"""A KV bucket mirrored in memory, on a real nats-server that is killed and started again."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Literal

import pytest

from libs.common import names
from libs.common.bus import mirror as mirror_module
from libs.common.bus.connection import Bus
from libs.common.bus.kv import Bucket
from libs.common.bus.mirror import Mirror, start_all
from libs.common.bus.server import NatsServer
from libs.common.errors import NotFound
from libs.common.models.node import Node
from tests.stack import connected_bus

WAIT = 5.0

Call = tuple[str, str | None, str | None]


class Heard:
    """What on_change was told, as (key, old comment, new comment), in order."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._changed = asyncio.Event()

    def __call__(self, key: str, old: Node | None, new: Node | None) -> None:
        self.calls.append((key, _comment(old), _comment(new)))
        self._changed.set()

    async def until(self, key: str) -> list[Call]:
        """Every call up to the first about `key` (the watch keeps the bucket's order, so
        once a write arrives, every earlier one has)."""
        async with asyncio.timeout(WAIT):
            while not any(called == key for called, _, _ in self.calls):
                self._changed.clear()
                await self._changed.wait()
        return self.calls


def _comment(node: Node | None) -> str | None:
    return None if node is None else node.comment


def comments(mirror: Mirror[Node, Node]) -> dict[str, str | None]:
    return {key: node.comment for key, node in mirror.items.items()}


@pytest.fixture
async def nodes(bus: Bus) -> Bucket[Node]:
    return await bus.bucket(names.BUCKET_NODES, Node)


@contextlib.asynccontextmanager
async def mirrored(bucket: Bucket[Node]) -> AsyncIterator[tuple[Mirror[Node, Node], Heard]]:
    heard = Heard()
    mirror = Mirror(bucket, heard)
    await mirror.start()
    try:
        yield mirror, heard
    finally:
        await mirror.stop()


async def test_start_returns_with_the_current_entries_then_follows_changes(
    nodes: Bucket[Node],
) -> None:
    await nodes.put("a", Node(comment="1"))
    await nodes.put("b", Node(comment="1"))
    await nodes.put("gone", Node(comment="1"))
    await nodes.delete("gone")
    async with mirrored(nodes) as (mirror, heard):
        # In before start() returned: the entries, not the deleted one.
        assert comments(mirror) == {"a": "1", "b": "1"}
        assert heard.calls == [("a", None, "1"), ("b", None, "1")]
        assert mirror.items["a"].revision == await nodes.revision("a")

        await nodes.put("a", Node(comment="2"))
        await nodes.delete("b")
        await nodes.put("c", Node(comment="1"))
        assert (await heard.until("c"))[2:] == [("a", "1", "2"), ("b", "1", None), ("c", None, "1")]
        assert comments(mirror) == {"a": "2", "c": "1"}


async def test_a_mirror_keeps_only_what_its_user_needs(nodes: Bucket[Node]) -> None:
    """`keep` holds a projection of each value (tftpd: a node's addresses), and a value it
    keeps nothing of (bootd: a node that is not discoverable) is absent, as if deleted."""
    told: list[tuple[str, str | None, str | None]] = []
    changed = asyncio.Event()

    def on_change(key: str, old: str | None, new: str | None) -> None:
        told.append((key, old, new))
        changed.set()

    await nodes.put("a", Node(comment="kept"))
    await nodes.put("b", Node())
    mirror = Mirror(nodes, on_change, keep=lambda key, node: node.comment)
    await mirror.start()
    try:
        assert mirror.items == {"a": "kept"}
        assert told == [("a", None, "kept")]
        await nodes.put("b", Node(comment="now"))
        await nodes.put("a", Node())
        await nodes.put("c", Node(comment="last"))
        async with asyncio.timeout(WAIT):
            while told[-1][0] != "c":
                changed.clear()
                await changed.wait()
        assert told[1:] == [("b", None, "now"), ("a", "kept", None), ("c", None, "last")]
        assert mirror.items == {"b": "now", "c": "last"}
    finally:
        await mirror.stop()


@pytest.mark.parametrize("how", ["killed", "stopped"])
async def test_every_change_around_a_nats_restart_reaches_the_mirror_once(
    nats_server: NatsServer, bus: Bus, nodes: Bucket[Node], how: Literal["killed", "stopped"]
) -> None:
    for key in "abce":
        await nodes.put(key, Node(comment="1"))
    async with mirrored(nodes) as (mirror, heard):
        with bus.reconnects.listen() as came_back:
            if how == "killed":
                assert nats_server.pid is not None
                os.kill(nats_server.pid, signal.SIGKILL)
                await nats_server.exited()
            else:
                await nats_server.stop()
            await nats_server.start()  # same port and store
            async with connected_bus(nats_server.url, "writer") as writer:
                written = await writer.bucket(names.BUCKET_NODES, Node)
                # While the mirror's connection is still away (it tries again each second).
                await written.put("a", Node(comment="2"))
                await written.delete("b")
                await written.put("d", Node(comment="1"))
                assert not came_back.is_set(), "the mirror was back before the writes"
                # Right after it came back, while its watch starts over.
                async with asyncio.timeout(WAIT):
                    await came_back.wait()
                await written.put("c", Node(comment="2"))
                await written.delete("e")
                await written.put("f", Node(comment="1"))
                await written.put("z", Node(comment="last"))
        calls = await heard.until("z")
    # Once each, in the bucket's order, deletes included; nothing from before passed on again.
    assert calls[4:] == [
        ("a", "1", "2"),
        ("b", "1", None),
        ("d", None, "1"),
        ("c", "1", "2"),
        ("e", "1", None),
        ("f", None, "1"),
        ("z", None, "last"),
    ]
    assert comments(mirror) == {"a": "2", "c": "2", "d": "1", "f": "1", "z": "last"}


async def test_start_fails_clearly_when_the_bucket_does_not_exist(
    bus: Bus, nodes: Bucket[Node]
) -> None:
    images = await bus.bucket(names.BUCKET_IMAGES, Node)
    await bus.js.delete_key_value(names.BUCKET_IMAGES)
    async with asyncio.timeout(WAIT):
        with pytest.raises(NotFound, match="no KV bucket 'images'"):
            await Mirror(images).start()
        # Started together with one that works: that one is stopped again.
        with pytest.raises(NotFound, match="no KV bucket 'images'"):
            await start_all(Mirror(nodes), Mirror(images))
    left = [t for t in asyncio.all_tasks() if t.get_name().startswith("mirror of KV")]
    assert left == []


class Breaking:
    """The real bucket, whose watch breaks once when it meets key `boom` (as an error nobody
    foresaw would break it: NATS restarts the bucket's watch rides out by itself)."""

    def __init__(self, bucket: Bucket[Node]) -> None:
        self._bucket = bucket
        self.name = bucket.name
        self.broke = False

    async def get_or_none(self, key: str) -> Node | None:
        return await self._bucket.get_or_none(key)

    async def watch(
        self, ready: asyncio.Event | None = None
    ) -> AsyncGenerator[tuple[str, Node | None, int], None]:
        async with contextlib.aclosing(self._bucket.watch(ready)) as changes:
            async for key, value, revision in changes:
                if key == "boom" and not self.broke:
                    self.broke = True
                    raise ConnectionError("the watch broke")
                yield key, value, revision


async def test_a_watch_that_fails_later_is_started_again(
    nodes: Bucket[Node], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mirror_module, "RESTART_WAIT", 0.05)
    await nodes.put("a", Node(comment="1"))
    heard = Heard()
    mirror = Mirror(Breaking(nodes), heard)
    await mirror.start()
    try:
        await nodes.put("boom", Node(comment="1"))
        await nodes.put("b", Node(comment="1"))
        # The change it broke on and the ones after it arrive, once each.
        calls = await heard.until("b")
    finally:
        await mirror.stop()
    assert calls == [("a", None, "1"), ("boom", None, "1"), ("b", None, "1")]
    failed = [r for r in caplog.records if "watch of KV nodes failed" in r.getMessage()]
    assert len(failed) == 1 and failed[0].exc_info is not None


async def test_a_failing_callback_does_not_stop_the_mirror(
    nodes: Bucket[Node], caplog: pytest.LogCaptureFixture
) -> None:
    heard = Heard()

    def on_change(key: str, old: Node | None, new: Node | None) -> None:
        if key == "bad":
            raise ValueError("a listener's bug")
        heard(key, old, new)

    mirror = Mirror(nodes, on_change)
    await mirror.start()
    try:
        await nodes.put("bad", Node(comment="1"))
        await nodes.put("good", Node(comment="1"))
        assert await heard.until("good") == [("good", None, "1")]
    finally:
        await mirror.stop()
    assert comments(mirror) == {"bad": "1", "good": "1"}
    assert any("on_change of bad failed" in r.getMessage() for r in caplog.records)


async def test_a_write_of_our_own_is_taken_in_at_once_and_only_once(
    nodes: Bucket[Node],
) -> None:
    async with mirrored(nodes) as (mirror, heard):
        revision = await nodes.put("a", Node(comment="1"))
        mirror.apply("a", await nodes.get("a"), revision)
        assert heard.calls == [("a", None, "1")]  # at once, not when the watch gets there
        await nodes.delete("a")
        mirror.apply("a", None, revision)  # a delete's own revision is not known
        assert heard.calls[1:] == [("a", "1", None)]
        await nodes.put("z", Node(comment="last"))
        # The watch's copies of both were older than what the mirror knew: not passed on.
        assert await heard.until("z") == [("a", None, "1"), ("a", "1", None), ("z", None, "last")]


async def test_caught_up_waits_for_the_watch(nodes: Bucket[Node]) -> None:
    async with mirrored(nodes) as (mirror, _):
        revision = await nodes.put("a", Node(comment="1"))
        await mirror.caught_up("a", revision)
        assert comments(mirror) == {"a": "1"}
        await nodes.delete("a")
        await mirror.caught_up("a", revision, deleted=True)
        assert comments(mirror) == {}


async def test_caught_up_reads_the_key_when_the_watch_is_behind(
    nodes: Bucket[Node], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mirror_module, "CATCH_UP_WAIT", 0.1)
    heard = Heard()
    behind = Mirror(nodes, heard)  # never started: its watch brings nothing
    revision = await nodes.put("a", Node(comment="1"))
    await behind.caught_up("a", revision)
    assert comments(behind) == {"a": "1"}
    await nodes.delete("a")
    await behind.caught_up("a", revision, deleted=True)
    assert comments(behind) == {}
    assert heard.calls == [("a", None, "1"), ("a", "1", None)]
    behind_lines = [r for r in caplog.records if "watch of KV nodes is behind" in r.getMessage()]
    assert [r.levelno for r in behind_lines] == [logging.WARNING] * 2


async def test_stop_leaves_no_task_behind(nodes: Bucket[Node]) -> None:
    await nodes.put("a", Node(comment="1"))
    loop = asyncio.get_running_loop()
    errors: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _, context: errors.append(context))
    try:
        async with mirrored(nodes) as (_, heard):
            await nodes.put("z", Node(comment="last"))
            await heard.until("z")
        await asyncio.sleep(0)  # let the cancelled tasks finish
        gc.collect()  # a task that ended with an error nobody retrieved complains here
    finally:
        loop.set_exception_handler(None)
    left = [t for t in asyncio.all_tasks() if t.get_name().startswith("mirror of KV")]
    assert (left, errors) == ([], [])
