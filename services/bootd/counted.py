"""A response wrapper that counts what went out and says so when the response is finished:
body bytes as sent, or for a file handed to the server (pathsend) its Content-Length, and
why it was cut off, if it was (services.bootd.stalls)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from services.bootd.stalls import CUT_OFF

Finished = Callable[[int, int, str], Awaitable[None]]  # (status, bytes sent, cut off)


class Counted(Response):
    def __init__(self, inner: Response, finished: Finished) -> None:
        # Not Response.__init__: the inner response renders itself.
        self.inner = inner
        self.finished = finished
        self.status_code = inner.status_code
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        status = 0
        length = 0
        sent = 0

        async def counting(message: Message) -> None:
            nonlocal status, length, sent
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", []):
                    if name.lower() == b"content-length":
                        length = int(value)
            elif kind == "http.response.body":
                sent += len(message.get("body", b""))
            elif kind == "http.response.pathsend":
                sent += length
            await send(message)

        try:
            await self.inner(scope, receive, counting)
        finally:
            await self.finished(status, sent, scope.get(CUT_OFF, ""))
