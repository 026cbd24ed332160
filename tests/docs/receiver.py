"""A webhook on 127.0.0.1 for tests: records every POST it gets and answers as a test says."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, NamedTuple


class Post(NamedTuple):
    key: str  # its Idempotency-Key header
    body: dict[str, Any]
    # What the webhook answered; None: it held the request and hung up without an answer.
    status: int | None
    at: float  # time.time() when it arrived
    request_line: str
    content_type: str


class Webhook:
    """Answers 200, but 500 to the first `refuse[node]` posts about a node, and holds the
    first post about a node in `hold` (sets `holding`) until `release` is set, then hangs up.

    A real HTTP/1.1 server on asyncio streams, not a thread: tests await what it receives."""

    def __init__(self) -> None:
        self.posts: list[Post] = []
        self.refuse: dict[str, int] = {}
        self.hold: set[str] = set()
        self.holding = asyncio.Event()
        self.release = asyncio.Event()
        self._arrived = asyncio.Condition()
        self._server: asyncio.Server | None = None
        self.url = ""

    async def start(self) -> None:
        """Listen on a free port; `url` is where to post."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/hooks/boot"

    async def stop(self) -> None:
        self.release.set()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def delivered(self) -> list[Post]:
        """The posts it answered 2xx: the ones the sender may consider done."""
        return [p for p in self.posts if p.status is not None and 200 <= p.status < 300]

    async def wait_delivered(self, count: int, within: float) -> list[Post]:
        async with asyncio.timeout(within), self._arrived:
            await self._arrived.wait_for(lambda: len(self.delivered()) >= count)
        return self.delivered()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode()
            request_line, *lines = head.rstrip("\r\n").split("\r\n")
            fields = (line.split(":", 1) for line in lines)
            headers = {name.strip().lower(): value.strip() for name, value in fields}
            body = json.loads(await reader.readexactly(int(headers["content-length"])))
            arrived = time.time()
            status = self._answer(body["node"])
            if status is None:
                self.holding.set()
                await self.release.wait()
            else:
                writer.write(f"HTTP/1.1 {status} Answered\r\nContent-Length: 0\r\n\r\n".encode())
                await writer.drain()
            post = Post(
                headers.get("idempotency-key", ""),
                body,
                status,
                arrived,
                request_line,
                headers.get("content-type", ""),
            )
            async with self._arrived:
                self.posts.append(post)
                self._arrived.notify_all()
        finally:
            writer.close()

    def _answer(self, node: str) -> int | None:
        if node in self.hold:
            self.hold.discard(node)
            return None
        if self.refuse.get(node, 0) > 0:
            self.refuse[node] -= 1
            return 500
        return 200
