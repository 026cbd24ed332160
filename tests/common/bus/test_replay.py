"""Reading the stream from a point (libs/common/bus/replay.py) against a real nats-server: from
the oldest, a sequence, a time or now; filtered; stopping at the end or following; and told,
never skipped, when the stream discarded what the reader wanted: at the start, and while it
read too slowly for the stream's retention."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import itertools
from collections.abc import Sequence

import msgspec
import pytest

from libs.common import names, subjects
from libs.common.bus.connection import Bus
from libs.common.bus.gaps import FellBehind, FromSeq, Gap, New, Oldest, Since, Start
from libs.common.bus.replay import Event, Replay
from libs.common.bus.retention import Retention
from libs.common.bus.server import NatsServer
from libs.common.bus.stream_state import first_seq_since, stream_window
from libs.common.errors import Invalid, NotFound
from tests.stack import nats_client
from tests.waiting import eventually

WAIT = 10.0


class Ping(msgspec.Struct):
    n: int
    pad: str = ""


async def publish(bus: Bus, count: int, *, first: int = 0, pad: int = 0) -> None:
    """Events n = first.. first+count-1, node n%3's (`wolfpack.node.n<k>.updated`)."""
    for n in range(first, first + count):
        await bus.publish(subjects.node(f"n{n % 3}", "updated"), Ping(n, "x" * pad))


async def read(
    bus: Bus, start: Start, filters: Sequence[str] = (subjects.ALL,), **kw: object
) -> list[int]:
    """The `n` of each event read to the end."""
    replay = Replay(bus.nc, start, filters, **kw)  # type: ignore[arg-type]
    found: list[int] = []
    async with asyncio.timeout(WAIT), contextlib.aclosing(replay.events()) as events:
        async for event in events:
            found.append(msgspec.json.decode(event.data, type=Ping).n)
    return found


async def test_from_the_oldest_every_event_in_order_then_it_ends(bus: Bus) -> None:
    await publish(bus, 10)
    assert await read(bus, Oldest()) == list(range(10))


async def test_an_empty_stream_ends_at_once(bus: Bus) -> None:
    assert await read(bus, Oldest()) == []
    assert await read(bus, FromSeq(1)) == []


async def test_each_event_has_its_sequence_time_and_subject(bus: Bus) -> None:
    before = datetime.datetime.now(datetime.UTC)
    await publish(bus, 2)
    after = datetime.datetime.now(datetime.UTC)
    replay = Replay(bus.nc, Oldest())
    found: list[Event] = [event async for event in replay.events()]
    assert [(e.seq, e.subject) for e in found] == [
        (1, subjects.node("n0", "updated")),
        (2, subjects.node("n1", "updated")),
    ]
    slack = datetime.timedelta(milliseconds=5)
    assert all(before - slack <= e.time <= after + slack for e in found)
    assert replay.last_seq == 2 and replay.resume() == FromSeq(3)


async def test_from_a_sequence_or_a_time(bus: Bus) -> None:
    await publish(bus, 5)
    middle = datetime.datetime.now(datetime.UTC)
    await publish(bus, 5, first=5)
    assert await read(bus, FromSeq(4)) == list(range(3, 10))
    assert await read(bus, Since(middle)) == list(range(5, 10))
    assert await read(bus, FromSeq(11)) == []  # not yet published
    assert await read(bus, New()) == []


async def test_an_events_time_given_back_starts_at_that_event(bus: Bus) -> None:
    await publish(bus, 20)
    found = [event async for event in Replay(bus.nc, Oldest()).events()]
    window = await stream_window(bus.nc)
    for event in found:
        at_once = [other.seq for other in found if other.time == event.time]
        assert await first_seq_since(bus.nc, event.time, window) == min(at_once)
        assert await read(bus, Since(event.time)) == list(range(min(at_once) - 1, 20))
    tick = datetime.timedelta(microseconds=1)
    assert await first_seq_since(bus.nc, found[-1].time + tick, window) == 21
    assert await first_seq_since(bus.nc, found[0].time - tick, window) == 1


async def test_filters_one_or_several_patterns(bus: Bus) -> None:
    await publish(bus, 12)
    await bus.publish(subjects.image("rocky", "built"), Ping(100))
    n1 = subjects.events_of("node", "n1")
    assert await read(bus, Oldest(), [n1]) == [1, 4, 7, 10]
    both = [n1, subjects.every("image")]
    assert await read(bus, FromSeq(5), both) == [4, 7, 10, 100]
    # One that matches nothing more after the start ends too, without waiting for one.
    assert await read(bus, FromSeq(12), [n1]) == []


async def test_a_bad_or_foreign_pattern_is_refused(bus: Bus) -> None:
    for bad in (["node.>"], ["wolfpack..x"], [subjects.ALL, subjects.every("node")], []):
        with pytest.raises(Invalid):
            await read(bus, Oldest(), bad)


async def test_no_stream_is_said_so(nats_server: NatsServer) -> None:
    async with nats_client(nats_server.url) as nc:
        with pytest.raises(NotFound, match="no stream WOLFPACK"):
            await stream_window(nc)


async def test_following_hands_out_new_events_as_they_come(bus: Bus) -> None:
    await publish(bus, 3)
    replay = Replay(bus.nc, FromSeq(2), follow=True)
    async with contextlib.aclosing(replay.events()) as events:
        events_ = aiter(events)
        assert (await anext(events_)).seq == 2
        assert (await anext(events_)).seq == 3
        for n in (3, 4):
            await publish(bus, 1, first=n)
            got = await asyncio.wait_for(anext(events_), WAIT)
            assert (got.seq, msgspec.json.decode(got.data, type=Ping).n) == (n + 1, n)


async def test_following_from_now_skips_what_was_there(bus: Bus) -> None:
    await publish(bus, 3)
    replay = Replay(bus.nc, New(), follow=True)
    async with contextlib.aclosing(replay.events()) as events:
        waiting = asyncio.ensure_future(anext(aiter(events)))
        # Nothing announces that the reader has begun: its consumer on the server does.
        await eventually(
            lambda: bus.js.stream_info(names.STREAM),
            "the reader's consumer",
            within=WAIT,
            until=lambda info: info.state.consumer_count == 1,
        )
        assert replay.resume() == FromSeq(4)  # "now" was fixed once
        await publish(bus, 1, first=3)
        assert (await asyncio.wait_for(waiting, WAIT)).seq == 4


async def test_a_sequence_already_discarded_raises_fell_behind(small: Bus) -> None:
    await publish(small, 300, pad=50)
    window = await stream_window(small.nc)
    assert window.first_seq > 10
    with pytest.raises(FellBehind) as err:
        await read(small, FromSeq(10))
    assert (err.value.gap.first, err.value.gap.last) == (10, window.first_seq - 1)
    assert str(err.value).startswith(f"events 10..{window.first_seq - 1} are gone")
    assert "the stream keeps 7 days / 16 KiB" in str(err.value)
    # From the oldest kept nothing is missing, so nothing to say.
    assert len(await read(small, Oldest())) == window.last_seq - window.first_seq + 1


async def test_a_time_before_what_is_kept_raises_fell_behind(small: Bus) -> None:
    long_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
    await publish(small, 300, pad=50)
    with pytest.raises(FellBehind, match=r"events 1\.\.\d+ are gone"):
        await read(small, Since(long_ago))


async def test_going_on_past_a_gap_tells_it_and_reads_what_is_kept(small: Bus) -> None:
    await publish(small, 300, pad=50)
    window = await stream_window(small.nc)
    gaps: list[Gap] = []
    found = await read(small, FromSeq(10), on_gap=gaps.append)
    assert [(g.first, g.last, g.behind) for g in gaps] == [(10, window.first_seq - 1, False)]
    assert found == list(range(window.first_seq - 1, 300))


async def slow_follower(bus: Bus, on_gap: object) -> tuple[list[int], list[Exception]]:
    """A follower that takes its first event, then stalls while 3 MiB are published into a
    stream of 256 KiB (more than the server sends ahead of a stalled ordered consumer), then
    reads on to the newest event. The `n` of what it read, and what it raised."""
    await bus.publish(subjects.node("n0", "updated"), Ping(-1))
    replay = Replay(bus.nc, Oldest(), follow=True, on_gap=on_gap)  # type: ignore[arg-type]
    found: list[int] = []
    raised: list[Exception] = []
    async with contextlib.aclosing(replay.events()) as events:
        found.append(msgspec.json.decode((await anext(aiter(events))).data, type=Ping).n)
        await publish(bus, 750, pad=4000)
        try:
            async with asyncio.timeout(WAIT):
                async for event in events:
                    found.append(msgspec.json.decode(event.data, type=Ping).n)
                    if found[-1] == 749:
                        break
        except FellBehind as err:
            raised.append(err)
    return found, raised


async def test_a_follower_the_stream_overtakes_is_told_and_has_no_hole_before(
    nats_server: NatsServer,
) -> None:
    bus = await Bus.connect(nats_server.url, "test", retention=Retention(max_bytes=256 * 1024))
    try:
        found, raised = await slow_follower(bus, None)
    finally:
        await bus.close()
    assert len(raised) == 1 and isinstance(raised[0], FellBehind)
    gap = raised[0].gap
    assert gap.behind and str(raised[0]).startswith("fell behind: events ")
    # What it handed out before the error is every event up to the gap, no more: whatever it
    # had past the gap is held back, as it cannot say which of the lost came before them.
    assert found == list(range(-1, gap.first - 2))


async def test_a_follower_told_of_gaps_reads_on_to_the_newest(nats_server: NatsServer) -> None:
    bus = await Bus.connect(nats_server.url, "test", retention=Retention(max_bytes=256 * 1024))
    gaps: list[Gap] = []
    try:
        found, raised = await slow_follower(bus, gaps.append)
    finally:
        await bus.close()
    assert raised == [] and gaps and all(g.behind for g in gaps)
    assert found[-1] == 749 and found == sorted(found)
    lost = {n for g in gaps for n in range(g.first - 2, g.last - 1)}  # seq s holds n = s - 2
    assert set(range(-1, 750)) - set(found) <= lost
    # Told once each: the gaps do not overlap.
    spans = sorted((g.first, g.last) for g in gaps)
    assert all(a[1] < b[0] for a, b in itertools.pairwise(spans))
