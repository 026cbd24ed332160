"""Which events a reader of the stream cannot have (libs/common/bus/gaps.py), without NATS: the
gap at the start from a sequence or a time, the gap found while reading, when there is nothing
to read, what the reader is told; and the retention's limits. The properties model a stream
that discards its oldest events: a gap is never missed (never a silent skip) and never
reported where every wanted event is still kept."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.common.bus.gaps import (
    FellBehind,
    FromSeq,
    Gap,
    New,
    Oldest,
    Since,
    Window,
    gap_after,
    gap_at_start,
    nothing_to_read,
)
from libs.common.bus.retention import Retention
from libs.common.errors import Invalid

T0 = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.UTC)


def at(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


def window(first: int, last: int, *, age: float = 7 * 86400, size: int = 1024**3) -> Window:
    """A stream keeping `first`..`last`, event n stored at T0 + n seconds."""
    empty = last < first
    return Window(
        first_seq=first,
        last_seq=last,
        first_time=None if empty else at(first),
        last_time=at(last) if last >= 1 else None,
        max_age=age,
        max_bytes=size,
    )


# --- the start ------------------------------------------------------------------------------


def test_from_a_sequence_still_kept_there_is_no_gap() -> None:
    assert gap_at_start(FromSeq(100), window(100, 200)) is None
    assert gap_at_start(FromSeq(150), window(100, 200)) is None
    assert gap_at_start(FromSeq(500), window(100, 200)) is None  # not yet published: waits


def test_from_a_sequence_below_the_first_kept_the_rest_are_gone() -> None:
    gap = gap_at_start(FromSeq(7), window(100, 200))
    assert gap == Gap(first=7, last=99, window=window(100, 200))
    assert gap.message() == (
        "events 7..99 are gone: the stream keeps 7 days / 1 GiB "
        "(first kept: 100 at 2024-05-01T12:01:40Z)"
    )


def test_one_event_gone_is_said_so() -> None:
    gap = gap_at_start(FromSeq(99), window(100, 200))
    assert gap is not None and gap.message().startswith("event 99 is gone:")


def test_from_a_sequence_when_all_went_the_next_is_named() -> None:
    w = window(201, 200, age=3600, size=0)  # emptied by age: the next will be 201
    gap = gap_at_start(FromSeq(150), w)
    assert gap == Gap(first=150, last=200, window=w)
    assert gap.message() == (
        "events 150..200 are gone: the stream keeps 1 hour / no size limit "
        "(none kept now; the next will be 201)"
    )
    assert gap_at_start(FromSeq(201), w) is None


def test_since_when_nothing_was_ever_discarded_there_is_no_gap() -> None:
    assert gap_at_start(Since(at(-1000)), window(1, 50)) is None
    assert gap_at_start(Since(at(-1000)), Window(first_seq=0, last_seq=0)) is None  # brand new


def test_since_a_time_after_the_first_kept_event_there_is_no_gap() -> None:
    assert gap_at_start(Since(at(100.5)), window(100, 200)) is None
    assert gap_at_start(Since(at(1000)), window(100, 200)) is None


def test_since_a_time_the_discarded_events_may_reach_is_a_gap() -> None:
    # Event 99 went, and was stored no later than event 100: it may be at or after the time.
    for since in (at(100), at(99.5), at(-5)):
        gap = gap_at_start(Since(since), window(100, 200))
        assert gap == Gap(first=1, last=99, window=window(100, 200))


def test_since_on_an_emptied_stream_the_last_event_bounds_it() -> None:
    w = window(201, 200)
    assert gap_at_start(Since(at(200)), w) is not None
    assert gap_at_start(Since(at(200.001)), w) is None


def test_from_the_oldest_or_from_now_nothing_is_missed() -> None:
    for start in (Oldest(), New()):
        assert gap_at_start(start, window(100, 200)) is None
        assert gap_at_start(start, window(201, 200)) is None


def test_sequences_start_at_one() -> None:
    with pytest.raises(ValueError):
        FromSeq(0)


# --- while reading --------------------------------------------------------------------------


def test_a_reader_ahead_of_the_first_kept_missed_nothing() -> None:
    assert gap_after(150, window(100, 200)) is None
    assert gap_after(99, window(100, 200)) is None  # 100 is next, and kept


def test_a_reader_the_stream_overtook_is_told_what_went() -> None:
    gap = gap_after(40, window(100, 200))
    assert gap == Gap(first=41, last=99, window=window(100, 200), behind=True)
    assert gap.message() == (
        "fell behind: events 41..99 are gone, discarded before they were all read (the "
        "stream keeps 7 days / 1 GiB; first kept: 100 at 2024-05-01T12:01:40Z)"
    )


def test_a_gap_already_told_is_not_told_again() -> None:
    assert gap_after(40, window(100, 200), told=99) is None
    assert gap_after(40, window(120, 200), told=99) == Gap(
        first=100, last=119, window=window(120, 200), behind=True
    )


def test_fell_behind_carries_the_gap_and_says_it() -> None:
    gap = Gap(first=3, last=9, window=window(10, 20))
    err = FellBehind(gap)
    assert err.gap is gap and str(err) == gap.message()


# --- nothing to read ------------------------------------------------------------------------


def test_what_a_reader_that_stops_at_the_end_would_read() -> None:
    w = window(100, 200)
    assert not nothing_to_read(Oldest(), w)
    assert not nothing_to_read(FromSeq(200), w)
    assert nothing_to_read(FromSeq(201), w)
    assert not nothing_to_read(Since(at(200)), w)
    assert nothing_to_read(Since(at(200.5)), w)
    assert nothing_to_read(New(), w)
    for start in (Oldest(), FromSeq(1), Since(at(0))):
        assert nothing_to_read(start, window(201, 200))
        assert nothing_to_read(start, Window(first_seq=0, last_seq=0))


# --- retention ------------------------------------------------------------------------------


def test_retention_defaults_and_how_they_read() -> None:
    assert Retention() == Retention(max_age=604800, max_bytes=1024**3)
    assert Retention().describe() == "7 days / 1 GiB"
    assert Retention(max_age=0, max_bytes=512 * 1024**2).describe() == "no age limit / 512 MiB"
    assert Retention(max_age=90, max_bytes=0).describe() == "1.5 minutes / no size limit"


@pytest.mark.parametrize(
    ("age", "size", "says"),
    [
        (0.5, 1024, "max_age: want 0 (no limit) or at least 1s"),
        (60, 100, "max_bytes: want 0 (no limit) or at least 4096 bytes"),
        (0, 0, "max_age: an age limit, a size limit or both"),
    ],
)
def test_retention_refuses_limits_that_cannot_work(age: float, size: int, says: str) -> None:
    with pytest.raises(Invalid) as err:
        Retention(max_age=age, max_bytes=size)
    assert str(err.value).startswith(says)


# --- properties over a modelled stream ------------------------------------------------------

# A stream's history: events 1..n with non-decreasing store times (several in one instant are
# possible), of which the oldest `gone` were discarded.
histories = st.integers(1, 40).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 3), min_size=n, max_size=n),  # time steps between events
        st.integers(0, n),
    )
)


def stream(steps: list[int], gone: int) -> tuple[list[datetime.datetime], Window]:
    times: list[datetime.datetime] = []
    clock = 0
    for step in steps:
        clock += step
        times.append(at(clock))
    n = len(times)
    first = gone + 1
    return times, Window(
        first_seq=first,
        last_seq=n,
        first_time=times[first - 1] if first <= n else None,
        last_time=times[-1],
    )


@given(histories, st.integers(1, 45))
def test_from_a_sequence_the_gap_is_exactly_the_discarded_wanted_events(
    history: tuple[list[int], int], seq: int
) -> None:
    _, w = stream(*history)
    gone = history[1]
    gap = gap_at_start(FromSeq(seq), w)
    wanted_gone = list(range(seq, gone + 1))
    if wanted_gone:
        assert gap is not None and (gap.first, gap.last) == (seq, gone)
    else:
        assert gap is None


@given(histories, st.integers(-2, 130))
def test_since_a_time_a_discarded_event_at_or_after_it_is_never_skipped(
    history: tuple[list[int], int], offset: int
) -> None:
    times, w = stream(*history)
    gone = history[1]
    since = at(offset)
    gap = gap_at_start(Since(since), w)
    if any(t >= since for t in times[:gone]):
        assert gap is not None and (gap.first, gap.last) == (1, gone)
    if gone == 0:
        assert gap is None
    if gap is None:
        # Whatever the reader gets from the server (every kept event at or after the time)
        # is every event at or after the time that the stream ever had.
        assert all(t < since for t in times[:gone])


@given(histories, st.integers(0, 40), st.integers(0, 40))
def test_while_reading_every_discarded_unread_event_is_told_once(
    history: tuple[list[int], int], read: int, told: int
) -> None:
    _, w = stream(*history)
    gone = history[1]
    gap = gap_after(read, w, told=told)
    missed = set(range(max(read, told) + 1, gone + 1))
    if missed:
        assert gap is not None and set(range(gap.first, gap.last + 1)) == missed and gap.behind
    else:
        assert gap is None
