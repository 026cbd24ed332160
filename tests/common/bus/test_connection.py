"""The NATS layer against a real nats-server: stream, durable consumers, subscriptions."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec
import pytest

from libs.common import names, subjects
from libs.common.bus.connection import DUPLICATE_WINDOW, KV_HISTORY, KV_HISTORY_DEFAULT, Bus
from libs.common.bus.server import NatsServer, find_nats_server, free_port
from libs.common.models.events import ChangeEvent
from tests.stack import nats_client
from tests.waiting import eventually

WAIT = 5.0  # upper bound for anything that should happen at once


class Ping(msgspec.Struct):
    n: int


def ping_subject(n: int) -> str:
    return subjects.node(f"n{n}", "updated")


async def collect(queue: asyncio.Queue[tuple[str, Ping]], count: int) -> list[int]:
    out = []
    for _ in range(count):
        _, event = await asyncio.wait_for(queue.get(), WAIT)
        out.append(event.n)
    return out


def recorder() -> tuple[asyncio.Queue[tuple[str, Ping]], Callable[[str, Ping], Awaitable[None]]]:
    queue: asyncio.Queue[tuple[str, Ping]] = asyncio.Queue()

    async def handler(subject: str, event: Ping) -> None:
        await queue.put((subject, event))

    return queue, handler


async def settled(bus: Bus, durable: str) -> tuple[int, int]:
    """(ack pending, redelivered) once the server has seen our acks."""
    await bus.nc.flush()
    info = await bus.js.consumer_info(names.STREAM, durable)
    return info.num_ack_pending or 0, info.num_redelivered or 0


async def test_connect_creates_stream_and_buckets(bus: Bus) -> None:
    info = await bus.js.stream_info(names.STREAM)
    assert info.config.subjects == ["wolfpack.>"]
    assert info.config.storage == "file"
    assert info.config.duplicate_window == DUPLICATE_WINDOW
    for bucket in names.BUCKETS:
        status = await (await bus.js.key_value(bucket)).status()
        # Long enough for a write to outlive a dead relay's ack wait (relay.py).
        assert status.history == KV_HISTORY.get(bucket, KV_HISTORY_DEFAULT)


async def test_a_bucket_made_with_a_short_history_gets_the_relays(nats_server: NatsServer) -> None:
    """An install from before the relay made its buckets with 5 revisions per key."""
    async with nats_client(nats_server.url) as nc:
        await nc.jetstream().create_key_value(bucket=names.BUCKET_NODES, history=5)
    bus = await Bus.connect(nats_server.url, "upgraded")
    try:
        status = await (await bus.js.key_value(names.BUCKET_NODES)).status()
        assert status.history == KV_HISTORY_DEFAULT
    finally:
        await bus.close()


async def test_services_connecting_at_once_all_succeed(nats_server: NatsServer) -> None:
    buses = await asyncio.gather(*(Bus.connect(nats_server.url, f"s{i}") for i in range(5)))
    for bus in buses:
        await bus.close()


async def test_publish_then_consume_round_trip(bus: Bus) -> None:
    event = ChangeEvent(kind="node", name="n1", action="updated", revision=3, fields=["comment"])
    seq = await bus.publish(subjects.node("n1", "updated"), event)
    assert seq == 1

    got: asyncio.Queue[tuple[str, ChangeEvent]] = asyncio.Queue()

    async def handler(subject: str, received: ChangeEvent) -> None:
        await got.put((subject, received))

    consumer = await bus.consume(subjects.every("node"), "registry-test", ChangeEvent, handler)
    subject, received = await asyncio.wait_for(got.get(), WAIT)
    await consumer.stop()
    assert subject == "wolfpack.node.n1.updated"
    assert received == event


async def test_publish_with_msg_id_is_stored_once(bus: Bus) -> None:
    first = await bus.publish(ping_subject(1), Ping(1), msg_id="build-42")
    again = await bus.publish(ping_subject(1), Ping(1), msg_id="build-42")
    assert first == again
    info = await bus.js.stream_info(names.STREAM)
    assert info.state.messages == 1


async def test_several_subjects_share_one_consumer(bus: Bus) -> None:
    await bus.publish(subjects.node("a", "updated"), Ping(1))
    await bus.publish(subjects.image("rocky", "built"), Ping(2))
    await bus.publish(subjects.profile("default", "deleted"), Ping(3))
    queue, handler = recorder()
    wanted = [subjects.every("node", "updated"), subjects.every("profile", "deleted")]
    consumer = await bus.consume(wanted, "overlayd", Ping, handler)
    assert await collect(queue, 2) == [1, 3]
    await bus.publish(subjects.image("rocky", "built"), Ping(4))
    await bus.publish(subjects.node("b", "updated"), Ping(5))
    assert await collect(queue, 1) == [5]
    await consumer.stop()
    assert queue.empty()


async def test_durable_consumer_catches_up_after_a_restart(bus: Bus) -> None:
    for n in (1, 2):
        await bus.publish(ping_subject(n), Ping(n))
    queue, handler = recorder()
    consumer = await bus.consume(subjects.ALL, "bootd", Ping, handler)
    assert await collect(queue, 2) == [1, 2]
    await consumer.stop()
    assert await settled(bus, "bootd") == (0, 0)

    # Published while the service is down.
    for n in (3, 4):
        await bus.publish(ping_subject(n), Ping(n))
    assert queue.empty()

    consumer = await bus.consume(subjects.ALL, "bootd", Ping, handler)
    await bus.publish(ping_subject(5), Ping(5))
    # In stream order: any redelivery of 1 or 2 would show up before 5.
    assert await collect(queue, 3) == [3, 4, 5]
    await consumer.stop()
    assert queue.empty()
    assert await settled(bus, "bootd") == (0, 0)


async def test_handler_failure_leads_to_redelivery(
    bus: Bus, caplog: pytest.LogCaptureFixture
) -> None:
    attempts: list[int] = []
    done: asyncio.Queue[int] = asyncio.Queue()

    async def flaky(subject: str, event: Ping) -> None:
        attempts.append(event.n)
        if len(attempts) == 1:
            raise RuntimeError("render failed")
        await done.put(event.n)

    await bus.publish(ping_subject(7), Ping(7))
    consumer = await bus.consume(subjects.ALL, "flaky", Ping, flaky, retry_delay=0.05)
    assert await asyncio.wait_for(done.get(), WAIT) == 7
    await consumer.stop()
    assert attempts == [7, 7]
    assert "render failed" in caplog.text
    assert (await settled(bus, "flaky"))[0] == 0


async def test_undecodable_event_is_terminated_not_retried(
    bus: Bus, caplog: pytest.LogCaptureFixture
) -> None:
    await bus.js.publish(ping_subject(1), b"{not json")
    await bus.js.publish(ping_subject(2), b'{"n": "two"}')
    await bus.publish(ping_subject(3), Ping(3))
    queue, handler = recorder()
    with caplog.at_level(logging.ERROR, logger="wolfpack.bus"):
        consumer = await bus.consume(subjects.ALL, "strict", Ping, handler)
        assert await collect(queue, 1) == [3]
        await consumer.stop()
    assert caplog.text.count("dropping undecodable event") == 2
    assert await settled(bus, "strict") == (0, 0)
    assert queue.empty()


async def test_stop_lets_the_running_handler_finish(bus: Bus) -> None:
    started = asyncio.Event()
    release = asyncio.Event()
    finished: list[int] = []

    async def slow(subject: str, event: Ping) -> None:
        started.set()
        await release.wait()
        finished.append(event.n)

    await bus.publish(ping_subject(1), Ping(1))
    consumer = await bus.consume(subjects.ALL, "slow", Ping, slow)
    await asyncio.wait_for(started.wait(), WAIT)
    stopping = asyncio.create_task(consumer.stop())
    await asyncio.sleep(0)  # stop() must not cancel the handler
    release.set()
    await asyncio.wait_for(stopping, WAIT)
    assert finished == [1]
    assert await settled(bus, "slow") == (0, 0)


async def test_a_concurrent_consumer_runs_handlers_at_once_and_finishes_them_on_stop(
    bus: Bus,
) -> None:
    release = asyncio.Event()
    running: set[int] = set()
    both = asyncio.Event()
    finished: list[int] = []

    async def slow(subject: str, event: Ping) -> None:
        running.add(event.n)
        if len(running) == 2:
            both.set()
        await release.wait()
        finished.append(event.n)

    for n in (1, 2, 3):
        await bus.publish(ping_subject(n), Ping(n))
    consumer = await bus.consume(subjects.ALL, "two-at-once", Ping, slow, concurrency=2)
    await asyncio.wait_for(both.wait(), WAIT)  # two handlers run together...
    assert len(running) == 2  # ...and no more than two
    stopping = asyncio.create_task(consumer.stop())
    await asyncio.sleep(0)
    release.set()
    await asyncio.wait_for(stopping, WAIT)
    # Both ended (and were acknowledged) before stop() returned; the third was left alone.
    assert sorted(finished) == sorted(running) and len(finished) == 2
    assert await settled(bus, "two-at-once") == (0, 0)


async def test_subscribe_sees_live_events(bus: Bus) -> None:
    sub = await bus.subscribe(subjects.every("node", "boot"), Ping)
    await bus.publish(subjects.node("n9", "boot"), Ping(9))
    subject, event = await asyncio.wait_for(anext(sub), WAIT)
    await sub.stop()
    assert (subject, event) == ("wolfpack.node.n9.boot", Ping(9))


async def test_bus_reconnects_and_consumer_resumes_after_server_restart(
    nats_server: NatsServer, bus: Bus
) -> None:
    queue, handler = recorder()
    consumer = await bus.consume(subjects.ALL, "survivor", Ping, handler)
    await bus.publish(ping_subject(1), Ping(1))
    assert await collect(queue, 1) == [1]

    await nats_server.stop()
    await nats_server.start()  # same port and store: stream and durable are still there

    seq = await _publish_when_back(bus, Ping(2))
    assert seq == 2
    assert await collect(queue, 1) == [2]
    await consumer.stop()


async def test_a_bus_whose_server_died_closes_at_once(nats_server: NatsServer) -> None:
    # As when `wolfpack up` is killed: nats-server and the services stop together, and a
    # service's shutdown must not wait on (or fail at) draining to a server that is gone.
    bus = await Bus.connect(nats_server.url, "test")
    _, handler = recorder()
    await bus.consume(subjects.ALL, "orphan", Ping, handler)
    await nats_server.stop()
    async with asyncio.timeout(WAIT):
        await bus.close()
    assert bus.nc.is_closed


async def _publish_when_back(bus: Bus, event: Ping) -> int:
    # One msg_id for every try: a publish whose ack timed out may have been stored, and the
    # stream drops the retry as a duplicate instead of storing the event twice.
    return await eventually(
        lambda: bus.publish(ping_subject(event.n), event, msg_id=f"ping-{event.n}"),
        f"ping {event.n} published once nats-server is back",
        within=3 * WAIT,
        every=0.1,
        ignoring=(Exception,),  # reconnecting: nothing to await but the retry
    )


def test_find_nats_server_finds_the_packaged_binary() -> None:
    assert Path(find_nats_server()).name == "nats-server"


async def test_server_start_failure_names_the_cause(tmp_path: Path) -> None:
    port = free_port()
    async with NatsServer(tmp_path / "a", port=port) as first:
        second = NatsServer(tmp_path / "b", port=port)
        with pytest.raises(RuntimeError, match="address already in use"):
            await second.start()
        assert first.running
        assert not second.running
