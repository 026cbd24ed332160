"""The WOLFPACK stream's retention (the newest events of each subject) and how a consumer's
fetch failures are logged, against a real nats-server."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec
import nats
import pytest
from nats.js import api

from libs.common import names, subjects
from libs.common.bus.connection import EVENTS_PER_SUBJECT, Bus, Consumer
from libs.common.bus.server import NatsServer

WAIT = 5.0


class Ping(msgspec.Struct):
    n: int


async def newest(bus: Bus, subject: str) -> Ping:
    found = await bus.js.get_last_msg(names.STREAM, subject)
    return msgspec.json.decode(found.data or b"", type=Ping)


async def test_the_stream_keeps_the_newest_events_of_each_subject(bus: Bus) -> None:
    busy, quiet = subjects.node("n1", "boot"), subjects.image("rocky", "pushed")
    await bus.publish(quiet, Ping(-1))
    for n in range(EVENTS_PER_SUBJECT + 36):
        await bus.publish(busy, Ping(n))
    info = await bus.js.stream_info(names.STREAM, subjects_filter=subjects.ALL)
    assert info.config.max_msgs_per_subject == EVENTS_PER_SUBJECT
    assert info.config.max_age in (None, 0)  # no age limit: see docs/reliability.md
    assert info.state.subjects == {busy: EVENTS_PER_SUBJECT, quiet: 1}
    # The oldest of the busy subject went; the lone old event of another subject stayed.
    assert (await newest(bus, busy)).n == EVENTS_PER_SUBJECT + 35
    assert (await newest(bus, quiet)).n == -1

    # A durable consumer that starts now sees the newest of each subject, in order.
    seen: list[int] = []
    done = asyncio.Event()

    async def handler(subject: str, event: Ping) -> None:
        seen.append(event.n)
        if len(seen) == EVENTS_PER_SUBJECT + 1:
            done.set()

    consumer = await bus.consume(subjects.ALL, "late", Ping, handler)
    await asyncio.wait_for(done.wait(), WAIT)
    await consumer.stop()
    assert seen == [-1, *range(36, EVENTS_PER_SUBJECT + 36)]


async def test_an_older_stream_without_limits_is_trimmed_on_upgrade(
    nats_server: NatsServer,
) -> None:
    # What an earlier wolfpack made: the stream with no limit, and 100 events of one subject.
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await js.add_stream(
        api.StreamConfig(
            name=names.STREAM,
            subjects=[subjects.ALL],
            storage=api.StorageType.FILE,
        )
    )
    subject = subjects.node("n1", "updated")
    for n in range(100):
        await js.publish(subject, msgspec.json.encode(Ping(n)))
    await nc.close()

    bus = await Bus.connect(nats_server.url, "upgraded")
    try:
        info = await bus.js.stream_info(names.STREAM)
        assert info.config.max_msgs_per_subject == EVENTS_PER_SUBJECT
        assert info.state.messages == EVENTS_PER_SUBJECT
        assert info.state.first_seq == 100 - EVENTS_PER_SUBJECT + 1
        assert (await newest(bus, subject)).n == 99
        # Connecting again (every service does) changes nothing.
        again = await Bus.connect(nats_server.url, "again")
        await again.close()
        assert (await bus.js.stream_info(names.STREAM)).state.messages == EVENTS_PER_SUBJECT
    finally:
        await bus.close()


async def fails_once(consumer: Consumer[Any], error: Exception) -> None:
    """The consumer's next fetch raises `error` (then fetches work again)."""
    psub = consumer._psub
    real = psub.fetch

    async def fetch(*args: Any, **kwargs: Any) -> Any:
        psub.fetch = real  # type: ignore[method-assign]
        raise error

    psub.fetch = fetch  # type: ignore[method-assign]
    consumer.wake()  # drop the fetch in flight, so the next one is ours


async def deliver_after(bus: Bus, error: Exception, caplog: pytest.LogCaptureFixture) -> None:
    got: asyncio.Queue[int] = asyncio.Queue()

    async def handler(subject: str, event: Ping) -> None:
        await got.put(event.n)

    consumer = await bus.consume(subjects.every("node"), "faulty", Ping, handler)
    caplog.clear()
    await fails_once(consumer, error)
    await bus.publish(subjects.node("n1", "updated"), Ping(7))
    # The consumer carries on: the event arrives.
    assert await asyncio.wait_for(got.get(), WAIT + 2) == 7
    await consumer.stop()


async def test_a_plain_fetch_timeout_is_one_warning_line(
    bus: Bus, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wolfpack.bus")
    # What nats.py raises when its deadline passes while the connection is being re-made.
    await deliver_after(bus, TimeoutError(), caplog)  # asyncio.TimeoutError is this one
    records = [r for r in caplog.records if r.name == "wolfpack.bus"]
    assert [(r.levelno, r.exc_info) for r in records] == [(logging.WARNING, None)]
    assert "consumer faulty: fetch timed out" in records[0].getMessage()


async def test_a_real_fetch_error_stays_loud(bus: Bus, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="wolfpack.bus")
    await deliver_after(bus, ValueError("a bug in the fetch"), caplog)
    loud = [r for r in caplog.records if r.name == "wolfpack.bus" and r.levelno >= logging.ERROR]
    assert len(loud) == 1
    assert loud[0].exc_info is not None and "a bug in the fetch" in str(loud[0].exc_info[1])
