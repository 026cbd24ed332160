"""Where a reader of the WOLFPACK stream starts, and which events it cannot have: pure logic,
no NATS (libs/common/bus/replay.py asks the server and applies it).

The stream discards its oldest events first (libs/common/bus/retention.py), so what it keeps is
one run of sequences, `first_seq` to `last_seq`. A reader who wants sequence n < first_seq, or
whose next event went while it read, has fallen behind: it is told so (FellBehind), never
moved on in silence.
"""

from __future__ import annotations

import datetime

import msgspec

from libs.common.bus.retention import described
from libs.common.errors import WolfpackError


class FromSeq(msgspec.Struct, frozen=True):
    """Start at this stream sequence (1 is the first event the stream ever had)."""

    seq: int

    def __post_init__(self) -> None:
        if self.seq < 1:
            raise ValueError(f"stream sequences start at 1, not {self.seq}")


class Since(msgspec.Struct, frozen=True):
    """Start at the first event stored at or after this time (aware)."""

    time: datetime.datetime


class Oldest(msgspec.Struct, frozen=True):
    """Start at the oldest event the stream keeps, whatever went before it."""


class New(msgspec.Struct, frozen=True):
    """Start after the newest event: only what is published from now on."""


Start = FromSeq | Since | Oldest | New


class Window(msgspec.Struct, frozen=True, kw_only=True):
    """What the stream keeps at one moment, and its limits (as NATS says them: 0 or below is
    no limit). Empty, `first_seq` is `last_seq + 1` and `first_time` is None."""

    first_seq: int
    last_seq: int
    first_time: datetime.datetime | None = None
    last_time: datetime.datetime | None = None
    max_age: float = 0.0
    max_bytes: int = 0

    @property
    def empty(self) -> bool:
        return self.first_time is None or self.last_seq < self.first_seq

    @property
    def next_seq(self) -> int:
        """The sequence the next event published will get."""
        return self.last_seq + 1

    @property
    def discarded(self) -> bool:
        """Did events go? The first event is sequence 1; an empty new stream says 0."""
        return self.first_seq > 1

    def kept(self) -> str:
        return described(self.max_age, self.max_bytes)


def _shown(when: datetime.datetime | None) -> str:
    if when is None:
        return "?"
    return when.astimezone(datetime.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Gap(msgspec.Struct, frozen=True, kw_only=True):
    """Events `first`..`last` are gone from the stream (`window`, as it was when found) before
    the reader had them: wanted at the start, or discarded while it read (`behind`)."""

    first: int
    last: int
    window: Window
    behind: bool = False

    def message(self) -> str:
        span = f"event {self.first} is" if self.first == self.last else (
            f"events {self.first}..{self.last} are"
        )  # fmt: skip
        w = self.window
        if w.empty:
            where = f"none kept now; the next will be {w.next_seq}"
        else:
            where = f"first kept: {w.first_seq} at {_shown(w.first_time)}"
        if self.behind:
            return (
                f"fell behind: {span} gone, discarded before they were all read (the stream "
                f"keeps {w.kept()}; {where})"
            )
        return f"{span} gone: the stream keeps {w.kept()} ({where})"


class FellBehind(WolfpackError):
    """The reader cannot have every event it asked for: `gap` says which are gone."""

    def __init__(self, gap: Gap) -> None:
        super().__init__(gap.message())
        self.gap = gap


def gap_at_start(start: Start, window: Window) -> Gap | None:
    """The events a reader starting at `start` wants that `window` no longer has.

    From a sequence: those below the first kept. From a time: when events were discarded and
    the newest of them may be as recent as that time (it is no later than the first kept
    event, or than the last one if none is kept), all of them, since which matched is
    unknowable. From the oldest, or from now: none."""
    if isinstance(start, FromSeq):
        if start.seq < window.first_seq:
            return Gap(first=start.seq, last=window.first_seq - 1, window=window)
        return None
    if isinstance(start, Since) and window.discarded:
        newest_gone = window.last_time if window.empty else window.first_time
        if newest_gone is None or start.time <= newest_gone:
            return Gap(first=1, last=window.first_seq - 1, window=window)
    return None


def gap_after(read: int, window: Window, *, told: int = 0) -> Gap | None:
    """The events after `read` (the last sequence read, or before the start) that `window`
    no longer has, leaving out those up to `told` (already reported)."""
    first = max(read, told) + 1
    if first < window.first_seq:
        return Gap(first=first, last=window.first_seq - 1, window=window, behind=True)
    return None


def nothing_to_read(start: Start, window: Window) -> bool:
    """Would a reader that stops at the stream's end, as it is now, read nothing at all?"""
    if window.empty:
        return True
    if isinstance(start, FromSeq):
        return start.seq > window.last_seq
    if isinstance(start, Since):
        return window.last_time is not None and start.time > window.last_time
    return isinstance(start, New)
