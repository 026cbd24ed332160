"""The stall cut-off, as nginx's send_timeout: a node must take each piece of a blob answer
within the stall limit, else its connection is closed. A node that stops reading would
otherwise hold its transfer slot (services.bootd.admission) for ever, and a few dozen of them
would stop every kernel and image from going out.

A piece is one ASGI body message (64 KiB of a Range answer, 1 MiB of `/system`'s archives:
Starlette sends those) or, for a whole file sent by sendfile(2), one services.bootd.blobs.STEP
(services.bootd.blobs.ZeroCopy times those steps itself)."""

from __future__ import annotations

import asyncio
from typing import Final

import msgspec
from starlette.types import Message, Scope, Send

from libs.common.settings import Settings

STALL: Final = Settings().bootd_stall_seconds
PATHSEND: Final = "http.response.pathsend"
# ZeroCopy puts the connection's abort here (scope["extensions"]): ASGI itself has no way to
# drop a connection, and closing it politely would wait for buffers the node never reads.
ABORT: Final = "wolfpack.abort"
# Set in the scope of an answer that was cut off, to what happened (for the node's stage event).
CUT_OFF: Final = "wolfpack.cut_off"


class Stalled(Exception):
    """The node took nothing for the stall limit; its connection has been aborted."""


class StallCounts(msgspec.Struct, kw_only=True):
    # Seconds a node may take to accept each piece of an answer.
    limit_seconds: float
    # Connections closed because the node took nothing for that long (each freed its slot).
    cut_off: int


def abort(scope: Scope) -> None:
    """Drop the connection of `scope` at once, if the server lets us (ZeroCopy on uvicorn);
    otherwise the server closes it when the unfinished answer returns."""
    dropping = (scope.get("extensions") or {}).get(ABORT)
    if dropping is not None:
        dropping()


def paced(scope: Scope, send: Send, seconds: float) -> Send:
    """`send` that gives each message `seconds` to go out, then aborts the connection and
    raises Stalled. A whole file (pathsend) goes through untimed: ZeroCopy times its steps."""

    async def sending(message: Message) -> None:
        if message["type"] == PATHSEND:
            await send(message)
            return
        try:
            async with asyncio.timeout(seconds):
                await send(message)  # waits while the socket's buffers are full
        except TimeoutError:
            abort(scope)
            raise Stalled(f"the node took nothing for {seconds:g} s") from None

    return sending
