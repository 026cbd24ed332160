"""The relay on a real nats-server: each KV write's announced event reaches the WOLFPACK
stream once, with the write's revision, however the relay is stopped and started."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec
import pytest
from nats.js import api

from libs.common import names, subjects
from libs.common.bus.announce import Announcement
from libs.common.bus.connection import Bus
from libs.common.bus.kv import Bucket
from libs.common.bus.relay import KvChange, Relay, msg_id, start_relays
from libs.common.models.events import ChangeEvent
from libs.common.models.node import Node
from tests.waiting import eventually

WAIT = 5.0


class Seen(msgspec.Struct, frozen=True):
    seq: int
    subject: str
    event: ChangeEvent
    msg_id: str | None


async def stream_events(bus: Bus, pattern: str = subjects.ALL) -> list[Seen]:
    """Every event kept in the stream under `pattern`, oldest first."""
    info = await bus.js.stream_info(names.STREAM, subjects_filter=pattern)
    if not info.state.messages:
        return []
    sub = await bus.js.subscribe(
        pattern, ordered_consumer=True, deliver_policy=api.DeliverPolicy.ALL
    )
    found: list[Seen] = []
    try:
        while True:
            msg = await sub.next_msg(WAIT)
            headers = msg.headers or {}
            found.append(
                Seen(
                    msg.metadata.sequence.stream,
                    msg.subject,
                    msgspec.json.decode(msg.data, type=ChangeEvent),
                    headers.get(api.Header.MSG_ID.value),
                )
            )
            if msg.metadata.num_pending == 0:
                return found
    finally:
        await sub.unsubscribe()


def node_event(name: str, action: str = "updated", fields: list[str] | None = None) -> Announcement:
    event = ChangeEvent(
        kind="node",
        name=name,
        action=action,
        revision=0,
        fields=fields or [],  # type: ignore[arg-type]
    )
    return Announcement(subjects.node(name, action), event)  # type: ignore[arg-type]


@pytest.fixture
async def nodes(bus: Bus) -> Bucket[Node]:
    return await bus.bucket(names.BUCKET_NODES, Node)


@pytest.fixture
async def relay(bus: Bus) -> AsyncIterator[Relay]:
    started = Relay(bus, names.BUCKET_NODES)
    await started.start()
    yield started
    await started.stop()


async def test_a_write_announces_its_event_with_its_revision(
    bus: Bus, nodes: Bucket[Node], relay: Relay
) -> None:
    events = await bus.subscribe(subjects.node("n1", "updated"), ChangeEvent)
    revision = await nodes.create("n1", Node(comment="a"), node_event("n1", fields=["comment"]))
    async with asyncio.timeout(WAIT):
        subject, event = await anext(aiter(events))
    await events.stop()
    assert subject == subjects.node("n1", "updated")
    assert (event.name, event.revision, event.fields) == ("n1", revision, ["comment"])
    [kept] = await stream_events(bus)
    assert kept.msg_id == msg_id(names.BUCKET_NODES, revision)


async def test_a_delete_announces_with_the_deletes_own_revision(
    bus: Bus, nodes: Bucket[Node], relay: Relay
) -> None:
    events = await bus.subscribe(subjects.every("node"), ChangeEvent)
    created = await nodes.create("n1", Node(), node_event("n1"))
    deleted = await nodes.delete("n1", created, node_event("n1", "deleted"))
    async with asyncio.timeout(WAIT):
        seen = [await anext(aiter(events)) for _ in range(2)]
    await events.stop()
    assert deleted > created
    assert [(s, e.revision) for s, e in seen] == [
        (subjects.node("n1", "updated"), created),
        (subjects.node("n1", "deleted"), deleted),
    ]
    assert await nodes.get_or_none("n1") is None


async def test_writes_made_while_no_relay_ran_are_announced_when_one_starts(
    bus: Bus, nodes: Bucket[Node], relay: Relay
) -> None:
    await relay.stop()
    revisions = [await nodes.put(f"n{i}", Node(), node_event(f"n{i}")) for i in range(20)]
    events = await bus.subscribe(subjects.every("node"), ChangeEvent)
    await relay.start()
    async with asyncio.timeout(WAIT):
        seen = [(await anext(aiter(events)))[1].revision for _ in range(20)]
    await events.stop()
    assert sorted(seen) == revisions


async def test_an_event_a_dead_relay_published_but_never_acked_is_not_published_twice(
    bus: Bus, nodes: Bucket[Node], relay: Relay
) -> None:
    """What a relay killed between its publish and its ack leaves: the event in the stream,
    the write unacknowledged. The next relay publishes it again; the stream drops the copy."""
    await relay.stop()
    revision = await nodes.put("n1", Node(), node_event("n1"))
    first = ChangeEvent(kind="node", name="n1", action="updated", revision=revision)
    await bus.publish(
        subjects.node("n1", "updated"), first, msg_id=msg_id(names.BUCKET_NODES, revision)
    )
    # The copy still reaches live subscribers (core NATS): the stream's consumers never see it.
    events = await bus.subscribe(subjects.node("n2", "updated"), ChangeEvent)
    await relay.start()
    later = await nodes.put("n2", Node(), node_event("n2"))
    async with asyncio.timeout(WAIT):
        await anext(aiter(events))  # relayed in order: n1's copy went before
    await events.stop()
    assert [k.event.revision for k in await stream_events(bus)] == [revision, later]


async def test_two_relays_share_the_writes_each_relayed_once(
    bus: Bus, nodes: Bucket[Node], relay: Relay
) -> None:
    other = Relay(bus, names.BUCKET_NODES)
    await other.start()
    events = await bus.subscribe(subjects.every("node"), ChangeEvent)
    revisions = await asyncio.gather(
        *(nodes.put(f"n{i}", Node(), node_event(f"n{i}")) for i in range(200))
    )
    async with asyncio.timeout(WAIT):
        seen = [(await anext(aiter(events)))[1].revision for _ in range(200)]
    await events.stop()
    # Counted once the stream acknowledged, a moment after subscribers see the event.
    await eventually(lambda: relay.relayed + other.relayed == 200 or None, "200 relayed",
                     within=WAIT)  # fmt: skip
    await other.stop()
    assert sorted(seen) == sorted(revisions)
    assert relay.relayed > 0 and other.relayed > 0, "one group: both take a share"
    assert sorted(k.event.revision for k in await stream_events(bus)) == sorted(revisions)


async def test_a_write_without_an_announcement_gets_the_fallbacks_event(
    bus: Bus, nodes: Bucket[Node]
) -> None:
    def fallback(change: KvChange) -> Announcement | None:
        return node_event(change.key, "deleted" if change.deleted else "updated")

    [relay] = await start_relays(bus, {names.BUCKET_NODES: fallback})
    events = await bus.subscribe(subjects.every("node"), ChangeEvent)
    kv = await bus.js.key_value(names.BUCKET_NODES)
    revision = await kv.put("byhand", b"{}")  # as `nats kv put` does
    async with asyncio.timeout(WAIT):
        subject, event = await anext(aiter(events))
    await events.stop()
    await relay.stop()
    assert (subject, event.revision) == (subjects.node("byhand", "updated"), revision)


async def test_a_write_with_no_event_at_all_is_passed_over_not_retried(
    bus: Bus, nodes: Bucket[Node], relay: Relay
) -> None:
    events = await bus.subscribe(subjects.every("node"), ChangeEvent)
    await nodes.put("quiet", Node())
    announced = await nodes.put("n1", Node(), node_event("n1"))
    async with asyncio.timeout(WAIT):
        _, event = await anext(aiter(events))
    await events.stop()
    assert event.revision == announced
    # The last ack follows the event's publish by a moment: wait for it, then look.
    info = await eventually(
        lambda: bus.js.consumer_info("KV_nodes", "relay-nodes"),
        "every write acknowledged",
        within=WAIT,
        until=lambda found: found.num_ack_pending == 0,
    )
    assert info.num_redelivered == 0


async def test_non_ascii_event_fields_arrive_unchanged(
    bus: Bus, nodes: Bucket[Node], relay: Relay
) -> None:
    events = await bus.subscribe(subjects.every("node"), ChangeEvent)
    await nodes.put("n1", Node(), node_event("n1", fields=["commént", "日本"]))
    async with asyncio.timeout(WAIT):
        _, event = await anext(aiter(events))
    await events.stop()
    assert event.fields == ["commént", "日本"]
