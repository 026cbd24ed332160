"""Reading the WOLFPACK stream from a point: every event kept since a sequence or a time, in
order, then (following) each new one, over an ordered consumer of nats.py (ephemeral, in the
server's memory, no acks). What the stream discarded before it could be read is never skipped
in silence: it raises FellBehind, or is told to `on_gap` when the caller goes on anyway.

    async with contextlib.aclosing(Replay(nc, Since(an_hour_ago)).events()) as events:
        async for event in events:
            print(event.seq, event.subject, event.data)

Only what the caller was handed counts as read: `resume()` is where a new Replay (on a new
connection, say) picks up without a duplicate or a hole.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Final

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import api
from nats.js.client import JetStreamContext

from libs.common import names, subjects
from libs.common.bus.gaps import (
    FellBehind,
    FromSeq,
    Gap,
    New,
    Oldest,
    Since,
    Start,
    gap_after,
    gap_at_start,
    nothing_to_read,
)
from libs.common.bus.stream_state import first_seq_since, stream_window
from libs.common.errors import Invalid

# Seconds without an event before a reader that stops at the end asks the server whether
# anything is left (a filter that matches nothing more sends nothing to say so).
IDLE: Final = 1.0
# Events held back at most while a jump in sequences is checked against the stream.
CHECK_EVERY: Final = 1024


class Event(msgspec.Struct, frozen=True):
    """One event of the stream: its sequence, when the server stored it, its subject, its
    payload (JSON, a Struct of libs/common/models)."""

    seq: int
    time: datetime.datetime
    subject: str
    data: bytes


def consumer_config(start: FromSeq | Oldest, filters: Sequence[str]) -> api.ConsumerConfig:
    """An ordered consumer's starting point and filter (nats.py adds the rest)."""
    config = api.ConsumerConfig()
    if isinstance(start, FromSeq):
        config.deliver_policy = api.DeliverPolicy.BY_START_SEQUENCE
        config.opt_start_seq = start.seq
    else:
        config.deliver_policy = api.DeliverPolicy.ALL
    if len(filters) > 1:
        config.filter_subjects = list(filters)
    else:
        config.filter_subject = filters[0]
    return config


_EPOCH: Final = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
# Tokens of a JetStream reply subject without a domain ($JS.ACK.<stream>.<consumer>.<delivered>.
# <stream seq>.<consumer seq>.<nanoseconds>.<pending>), and where its time is.
_V1_TOKENS: Final = 9
_V1_TIME: Final = 7


def _stored_at(msg: Msg) -> datetime.datetime:
    """When the server stored `msg`, cut to microseconds as the stream's own times are: nats.py's
    metadata goes through a float and may round up past it, and a time printed and given back
    as --since would then miss its own event."""
    tokens = (msg.reply or "").split(".")
    try:
        nanoseconds = int(tokens[_V1_TIME if len(tokens) == _V1_TOKENS else Msg.Ack.Timestamp])
    except (IndexError, ValueError):
        return msg.metadata.timestamp
    return _EPOCH + datetime.timedelta(microseconds=nanoseconds // 1000)


def _event(msg: Msg) -> Event:
    seq = msg.metadata.sequence.stream
    return Event(seq=seq, time=_stored_at(msg), subject=msg.subject, data=msg.data)


class Replay:
    """The events of `stream` on `filters` (NATS subject patterns) from `start`, oldest first.

    `follow`: go on with new events until the caller stops; else stop after the last event
    the stream held when reading began. `on_gap`: None raises FellBehind when events the
    reader wants are gone; a function is told of each such gap instead, and reading goes on.
    Whatever comes out is, until a gap is raised or told, every event on `filters` from the
    start without a hole: while sequences jump (other subjects, or discarded events), the
    events after the jump are held back until the stream says nothing was discarded there.
    """

    def __init__(
        self,
        nc: Client,
        start: Start,
        filters: Sequence[str] = (subjects.ALL,),
        *,
        follow: bool = False,
        on_gap: Callable[[Gap], None] | None = None,
        stream: str = names.STREAM,
    ) -> None:
        self._nc = nc
        self._start = start
        try:
            self._filters = subjects.check_patterns(list(filters))
        except Invalid as err:
            raise Invalid(err.message, field="subject") from None
        self._follow = follow
        self._on_gap = on_gap
        self._stream = stream
        # The last sequence handed out, and the last one a gap told of.
        self.last_seq: int | None = None
        self._told = 0

    def resume(self) -> Start:
        """Where to start again to read on exactly from here."""
        if self.last_seq is not None:
            return FromSeq(self.last_seq + 1)
        return self._start

    def _gone(self, gap: Gap) -> None:
        if self._on_gap is None:
            raise FellBehind(gap)
        self._told = max(self._told, gap.last)
        self._on_gap(gap)

    async def _subscribe(self, start: FromSeq | Oldest) -> JetStreamContext.PushSubscription:
        js = self._nc.jetstream()
        try:
            return await js.subscribe(
                self._filters[0],
                stream=self._stream,
                ordered_consumer=True,
                config=consumer_config(start, self._filters),
            )
        except nats.js.errors.BadRequestError as err:
            # Filters checked, yet refused (an older server): its words say why.
            wanted = " ".join(self._filters)
            raise Invalid(f"{wanted}: {err.description}", field="subject") from None

    async def events(self) -> AsyncGenerator[Event, None]:
        window = await stream_window(self._nc, self._stream)
        start = self._start
        gap = gap_at_start(start, window)
        if gap is not None:
            self._gone(gap)
        end = None if self._follow else window.last_seq
        if end is not None and nothing_to_read(start, window):
            return
        # A time or "now" is made a sequence once, here: a resume reads on from the same
        # point, and an event discarded before it was delivered is a jump like any other.
        if isinstance(start, New):
            start = FromSeq(window.next_seq)
        elif isinstance(start, Since):
            start = FromSeq(await first_seq_since(self._nc, start.time, window, self._stream))
        self._start = start
        read: int | None = None
        if isinstance(start, FromSeq):
            read = start.seq - 1 if gap is None else max(gap.last, start.seq - 1)
        sub = await self._subscribe(start)
        try:
            async with contextlib.aclosing(self._read(sub, read, end)) as events:
                async for event in events:
                    self.last_seq = event.seq
                    yield event
        finally:
            with contextlib.suppress(nats.errors.Error, OSError):
                await sub.unsubscribe()  # a closed connection took the server's side with it

    async def _read(
        self, sub: JetStreamContext.PushSubscription, read: int | None, end: int | None
    ) -> AsyncGenerator[Event, None]:
        """Events as delivered, each jump in sequences checked before what follows it is
        handed out (see the class)."""
        received = 0  # the highest sequence delivered, past the end too
        suspect: int | None = None  # `read` before the first jump not yet checked
        held: list[Event] = []
        if end is not None and await self._drained(sub, received):
            return
        while True:
            try:
                msg = await sub.next_msg(timeout=IDLE)
            except nats.errors.TimeoutError:
                if self._nc.is_closed:
                    raise nats.errors.ConnectionClosedError from None
                if end is not None and await self._drained(sub, received):
                    break
                continue
            event = _event(msg)
            received = max(received, event.seq)
            past_end = end is not None and event.seq > end
            if not past_end:
                if read is not None and event.seq > read + 1 and suspect is None:
                    suspect = read
                read = event.seq
                held.append(event)
            done = past_end or (
                end is not None and (event.seq >= end or msg.metadata.num_pending == 0)
            )
            if suspect is not None and (done or sub.pending_msgs == 0 or len(held) >= CHECK_EVERY):
                window = await stream_window(self._nc, self._stream)
                gap = gap_after(suspect, window, told=self._told)
                suspect = None
                if gap is not None:
                    self._gone(gap)
            if suspect is None:
                for each in held:
                    yield each
                held.clear()
            if done:
                break

    async def _drained(self, sub: JetStreamContext.PushSubscription, received: int) -> bool:
        """Has the server nothing left for this reader: nothing pending, nothing in flight?"""
        info = await sub.consumer_info()
        if info.num_pending or sub.pending_msgs:
            return False
        # Delivered but not yet here? (A consumer that delivered nothing reports the sequence
        # before its start.)
        last = info.delivered
        return last is None or not last.consumer_seq or (last.stream_seq or 0) <= received
