"""How a consumer's fetches are logged (idle, failing, NATS away and back), against a real
nats-server. The stream's retention: tests/common/bus/test_retention.py."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from libs.common import subjects
from libs.common.bus import consumer as consumer_module
from libs.common.bus.connection import Bus
from libs.common.bus.consumer import Consumer
from libs.common.bus.server import NatsServer

WAIT = 5.0


class Ping(msgspec.Struct):
    n: int


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


def said(caplog: pytest.LogCaptureFixture, durable: str) -> list[logging.LogRecord]:
    """What the bus logged about consumer `durable`."""
    about = f"consumer {durable}:"
    return [r for r in caplog.records if r.name == "wolfpack.bus" and about in r.getMessage()]


class Lines(logging.Handler):
    """Lets a test await log lines of the bus (they are written on the loop's thread)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []
        self._arrived = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        self._arrived.set()

    async def until(self, text: str, count: int = 1, within: float = WAIT) -> None:
        async with asyncio.timeout(within):
            while sum(text in message for message in self.messages) < count:
                self._arrived.clear()
                await self._arrived.wait()


@pytest.fixture
def lines(caplog: pytest.LogCaptureFixture) -> Iterator[Lines]:
    caplog.set_level(logging.DEBUG, logger="wolfpack.bus")
    handler = Lines()
    logger = logging.getLogger("wolfpack.bus")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


async def test_a_plain_fetch_timeout_from_a_server_that_answers_is_no_warning(
    bus: Bus, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="wolfpack.bus")
    # What nats.py raises when the server's "request timeout" for an idle pull comes back
    # just as the fetch's time runs out (asyncio.TimeoutError is this one).
    await deliver_after(bus, TimeoutError(), caplog)
    records = said(caplog, "faulty")
    assert [r for r in records if r.levelno >= logging.INFO] == []
    assert any("no event within" in r.getMessage() for r in records)


async def test_an_idle_consumer_logs_no_warning(
    bus: Bus, lines: Lines, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(consumer_module, "FETCH_WAIT", 0.2)
    got: asyncio.Queue[int] = asyncio.Queue()

    async def handler(subject: str, event: Ping) -> None:
        await got.put(event.n)

    consumer = await bus.consume("wolfpack.node.>", "idle", Ping, handler)
    try:
        # Five fetch periods with nothing to fetch, each checked with the server.
        await lines.until("consumer idle: no event within 0.2s", count=5)
        await bus.publish(subjects.node("n1", "updated"), Ping(1))
        assert await asyncio.wait_for(got.get(), WAIT) == 1
    finally:
        await consumer.stop()
    assert [r.getMessage() for r in said(caplog, "idle") if r.levelno >= logging.INFO] == []


async def test_a_server_away_is_one_warning_and_its_return_one_line(
    nats_server: NatsServer,
    bus: Bus,
    lines: Lines,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(consumer_module, "FETCH_WAIT", 0.2)
    got: asyncio.Queue[int] = asyncio.Queue()

    async def handler(subject: str, event: Ping) -> None:
        await got.put(event.n)

    consumer = await bus.consume("wolfpack.node.>", "patient", Ping, handler)
    try:
        await lines.until("consumer patient: no event within")
        await nats_server.stop()
        await lines.until("consumer patient: NATS not answering")
        # Several more fetch periods while it is away: no more warnings.
        await lines.until("consumer patient: NATS still not answering", count=3)
        await nats_server.start()  # same port and store: stream and durable are still there
        await lines.until("consumer patient: NATS answers again")
        await bus.publish(subjects.node("n1", "updated"), Ping(2))
        assert await asyncio.wait_for(got.get(), WAIT) == 2
    finally:
        await consumer.stop()
    records = said(caplog, "patient")
    loud = [(r.levelno, r.getMessage()) for r in records if r.levelno >= logging.INFO]
    assert [level for level, _ in loud] == [logging.WARNING, logging.INFO], loud
    assert "NATS not answering" in loud[0][1]
    assert "NATS answers again" in loud[1][1]


async def test_a_real_fetch_error_stays_loud(bus: Bus, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="wolfpack.bus")
    await deliver_after(bus, ValueError("a bug in the fetch"), caplog)
    loud = [r for r in caplog.records if r.name == "wolfpack.bus" and r.levelno >= logging.ERROR]
    assert len(loud) == 1
    assert loud[0].exc_info is not None and "a bug in the fetch" in str(loud[0].exc_info[1])
