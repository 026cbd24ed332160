"""A chunk too big to hold in memory (one huge file): compressed on threads, streamed to the store.

A producer thread writes the archive through a threaded compressor into a small bounded queue;
the event loop drains the queue into `ContentStore.put_stream`. If the store fails or the build
is cancelled the producer is told to stop at its next write.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import AsyncIterator, Sequence

from libs.common.store.cas import ContentStore
from services.builder.vnfs.compress import Compression, compressing_writer
from services.builder.vnfs.cpio import archive_pieces
from services.builder.vnfs.entries import Entry

# Compressed pieces waiting for the store; each is at most a compressor block (1 MiB).
DEPTH = 8
_END = b""


class _Stopped(Exception):
    """The consumer went away; the producer ends quietly."""


class _QueueSink:
    def __init__(self, pieces: queue.Queue[bytes | BaseException], stop: threading.Event):
        self._pieces = pieces
        self._stop = stop

    def write(self, data: bytes) -> int:
        if data:
            self.put(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def put(self, item: bytes | BaseException) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(queue.Full):
                self._pieces.put(item, timeout=0.1)
                return
        raise _Stopped


async def stream_chunk(
    store: ContentStore,
    root: bytes,
    entries: Sequence[Entry],
    settings: Compression,
    threads: int,
) -> str:
    """Store the compressed archive of `entries`; returns its digest."""
    pieces: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=DEPTH)
    stop = threading.Event()
    sink = _QueueSink(pieces, stop)

    def produce() -> None:
        try:
            with compressing_writer(sink, settings, threads) as writer:
                for piece in archive_pieces(root, entries):
                    writer.write(piece)
            sink.put(_END)
        except _Stopped:
            pass
        except BaseException as err:  # handed to the consumer, which raises it
            with contextlib.suppress(_Stopped):
                sink.put(err)

    async def consume() -> AsyncIterator[bytes]:
        while True:
            item = await asyncio.to_thread(pieces.get)
            if isinstance(item, BaseException):
                raise item
            if not item:
                return
            yield item

    producer = asyncio.create_task(asyncio.to_thread(produce))
    try:
        return await store.put_stream(consume())
    finally:
        stop.set()
        # Unblock a consumer thread still waiting in get() after a cancellation.
        with contextlib.suppress(queue.Full):
            pieces.put_nowait(_END)
        await asyncio.shield(producer)
