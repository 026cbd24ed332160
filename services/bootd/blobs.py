"""Blob answers: immutable, content-addressed files with a strong ETag (the digest), Range
and HEAD (Starlette's FileResponse), and 304 for a matching If-None-Match.

A whole-file answer leaves as ASGI `http.response.pathsend`; `ZeroCopy`, the outermost layer
of bootd's app, answers that message on uvicorn with sendfile(2), so blob bytes go from the
page cache to the socket without entering Python (Range answers are sent by Starlette)."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator
from typing import BinaryIO, Final, cast

import h11
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import RequestResponseCycle

from libs.common.errors import NotFound
from libs.common.store.cas import CHUNK, ContentStore, parse_digest
from services.bootd.guard import GuardedBlob, guard_of
from services.bootd.stalls import ABORT, PATHSEND, STALL, Stalled

CACHE_CONTROL: Final = "public, max-age=31536000, immutable"
MEDIA_TYPE: Final = "application/octet-stream"
# A node must take each STEP bytes of a whole file within the stall limit (60 s: about
# 140 KB/s); services.bootd.stalls has why.
STEP: Final = 8 << 20


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags


def blob_response(store: ContentStore, digest: str, if_none_match: str | None) -> Response:
    """The blob `digest` (Invalid for a malformed digest, NotFound if not stored); from bootd's
    ServingStore, sent only once checked against its digest (services.bootd.guard)."""
    hexdigits = parse_digest(digest)
    path = store.path(hexdigits)
    etag = f'"{hexdigits}"'
    headers = {"etag": etag, "cache-control": CACHE_CONTROL}
    if etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    try:
        found = path.stat()
    except FileNotFoundError:
        found = None
    if found is None or not stat.S_ISREG(found.st_mode):
        raise NotFound(f"blob {hexdigits} not in the store", field="digest")
    # Our stat, so FileResponse does not stat again in a worker thread.
    response = FileResponse(path, headers=headers, media_type=MEDIA_TYPE, stat_result=found)
    guard = guard_of(store)
    return response if guard is None else GuardedBlob(response, guard, [(hexdigits, found)])


def concatenated(store: ContentStore, digests: list[str], head: bool) -> Response:
    """Several blobs end to end, as `/system` sends a node's overlay archives (the kernel
    unpacks them in turn)."""
    sizes = [store.size(d) for d in digests]  # NotFound before anything is sent

    async def chunks() -> AsyncIterator[bytes]:
        if head:
            return
        for digest in digests:
            with store.open(digest) as blob:
                while chunk := await asyncio.to_thread(blob.read, CHUNK):
                    yield chunk

    headers = {"content-length": str(sum(sizes)), "cache-control": CACHE_CONTROL}
    return StreamingResponse(chunks(), headers=headers, media_type=MEDIA_TYPE)


class _FileBody:
    """Stands for the file's bytes in h11's send_with_data_passthrough: h11 counts them
    against Content-Length (and frames them) without ever seeing them."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size


class ZeroCopy:
    """Offers `http.response.pathsend` on uvicorn's h11 protocol and answers it with
    loop.sendfile (sendfile(2) on a plain socket; read and write where that is not possible).
    Another server gets the app untouched, and Starlette reads the file itself."""

    def __init__(self, app: ASGIApp, stall: float = STALL) -> None:
        self.app = app
        self.stall = stall

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # uvicorn hands the app its request cycle's bound `send`: the cycle owns the socket.
        cycle = getattr(send, "__self__", None)
        if scope["type"] != "http" or not isinstance(cycle, RequestResponseCycle):
            await self.app(scope, receive, send)
            return
        extensions = scope.get("extensions") or {}
        scope["extensions"] = {**extensions, PATHSEND: {}, ABORT: cycle.transport.abort}
        head = scope["method"] == "HEAD"

        async def sending(message: Message) -> None:
            if message["type"] == PATHSEND:
                if not head:
                    await _sendfile(cycle, message["path"], self.stall)
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)  # the cycle ends the response: keep-alive or close

        await self.app(scope, receive, sending)


async def _sendfile(cycle: RequestResponseCycle, path: str, stall: float) -> None:
    """The file's bytes after the head; Stalled if the node stopped taking them."""
    transport = cycle.transport
    # Opening a local file is a metadata lookup; the bytes are read by the kernel, not here.
    with open(path, "rb") as file:  # noqa: ASYNC230
        body = _FileBody(os.fstat(file.fileno()).st_size)
        pieces = cycle.conn.send_with_data_passthrough(h11.Data(data=cast(bytes, body))) or []
        for piece in pieces:
            if transport.is_closing():
                return
            if piece is not body:
                transport.write(piece)  # chunk framing, if the answer had no Content-Length
                continue
            try:
                await _send_steps(transport, file, body.size, stall)
            except TimeoutError:  # an OSError too: first
                transport.abort()
                raise Stalled(f"the node took under {STEP >> 20} MiB in {stall:g} s") from None
            except OSError:
                # The node went away mid-file: nothing more can be said on this connection.
                transport.abort()


async def _send_steps(
    transport: asyncio.WriteTransport, file: BinaryIO, size: int, stall: float
) -> None:
    loop = asyncio.get_running_loop()
    for offset in range(0, size, STEP):
        async with asyncio.timeout(stall):
            await loop.sendfile(transport, file, offset, min(STEP, size - offset))
