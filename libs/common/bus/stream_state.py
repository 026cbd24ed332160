"""What the WOLFPACK stream keeps, asked of the server: its first and last event with their
times and its limits (a Window, libs/common/bus/gaps.py), and which sequence a point in time
falls on. Plain JetStream API requests, decoded with msgspec: nats.py's stream info drops the
times."""

from __future__ import annotations

import datetime
from typing import Final

import msgspec
import nats.errors
from nats.aio.client import Client

from libs.common import names, subjects
from libs.common.bus.gaps import Window
from libs.common.errors import NotFound, WolfpackError

# Seconds the server has to answer a question about the stream.
ANSWER_WAIT: Final = 5.0
# JetStream's error code for "stream not found".
STREAM_NOT_FOUND: Final = 10059


class _Error(msgspec.Struct):
    code: int = 0
    err_code: int = 0
    description: str = ""


class _Config(msgspec.Struct):
    max_age: int = 0  # nanoseconds
    max_bytes: int = -1


class _State(msgspec.Struct):
    messages: int = 0
    first_seq: int = 0
    last_seq: int = 0
    first_ts: str = ""
    last_ts: str = ""


class _StreamInfo(msgspec.Struct):
    """The answer to `$JS.API.STREAM.INFO.<stream>`, what of it a reader needs."""

    config: _Config = msgspec.field(default_factory=_Config)
    state: _State = msgspec.field(default_factory=_State)
    error: _Error | None = None


def _time(text: str) -> datetime.datetime | None:
    """A server timestamp (RFC 3339, nanoseconds: cut to microseconds, never rounded up)."""
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    return None if when.year <= 1 else when  # the zero time: no such event


async def stream_window(nc: Client, stream: str = names.STREAM) -> Window:
    """What `stream` keeps now, its first and last event with their times, and its limits."""
    try:
        answer = await nc.request(f"$JS.API.STREAM.INFO.{stream}", b"", timeout=ANSWER_WAIT)
    except nats.errors.NoRespondersError:
        raise NotFound(f"NATS has no JetStream, so no stream {stream}") from None
    info = msgspec.json.decode(answer.data, type=_StreamInfo)
    if info.error is not None:
        if info.error.err_code == STREAM_NOT_FOUND:
            raise NotFound(
                f"NATS has no stream {stream} (yet): it is made when a wolfpack service first "
                "connects"
            )
        raise WolfpackError(f"stream {stream}: {info.error.description}")
    state = info.state
    return Window(
        first_seq=state.first_seq,
        last_seq=state.last_seq,
        first_time=_time(state.first_ts) if state.messages else None,
        last_time=_time(state.last_ts),
        max_age=info.config.max_age / 1e9,
        max_bytes=info.config.max_bytes,
    )


class _Stored(msgspec.Struct):
    seq: int
    time: str


class _MsgAnswer(msgspec.Struct):
    """The answer to `$JS.API.STREAM.MSG.GET.<stream>`, what of it a lookup needs."""

    message: _Stored | None = None
    error: _Error | None = None


async def _time_from(nc: Client, stream: str, seq: int) -> datetime.datetime | None:
    """When the first event at or after `seq` was stored; None if there is none."""
    ask = msgspec.json.encode({"seq": seq, "next_by_subj": subjects.ALL})
    answer = await nc.request(f"$JS.API.STREAM.MSG.GET.{stream}", ask, timeout=ANSWER_WAIT)
    found = msgspec.json.decode(answer.data, type=_MsgAnswer)
    if found.message is None:
        if found.error is not None and found.error.code != 404:
            raise WolfpackError(f"stream {stream}: {found.error.description}")
        return None
    return _time(found.message.time)


async def first_seq_since(
    nc: Client, since: datetime.datetime, window: Window, stream: str = names.STREAM
) -> int:
    """The sequence of the first event stored at or after `since` (the next one to come if
    none is kept): a binary search over the stream, stored times never going back."""
    low, high = max(window.first_seq, 1), window.next_seq
    while low < high:
        middle = (low + high) // 2
        when = await _time_from(nc, stream, middle)
        if when is None or when >= since:
            high = middle
        else:
            low = middle + 1
    return low
