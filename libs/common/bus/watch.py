"""Following a KV bucket across NATS restarts.

nats.py watches a bucket with an ordered consumer, which lives in the server's memory: a
restarted nats-server has forgotten it. nats.py notices only after two missed heartbeats
(10 s), and when the re-subscription fails while the client is still reconnecting, its
checker task dies and the watch goes silent for good. So a watch here starts again itself
whenever the connection is made again, from the bucket's current values, and passes on
only what is newer than what it already passed on: the caller sees every change once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Iterator
from typing import Final

from nats.js.kv import KeyValue

log = logging.getLogger("wolfpack.kv")

# How long a watch that could not start again waits before the next try (unless the
# connection comes back first).
RETRY_WAIT: Final = 1.0


class Reconnects:
    """Tells every watch that the connection to NATS was made again."""

    def __init__(self) -> None:
        self._listeners: set[asyncio.Event] = set()

    def fire(self) -> None:
        for event in self._listeners:
            event.set()

    @contextlib.contextmanager
    def listen(self) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        self._listeners.add(event)
        try:
            yield event
        finally:
            self._listeners.discard(event)


class _Lost(Exception):
    """The connection was made again: this watch's consumer may be gone with the server."""


async def entries(
    kv: KeyValue, reconnects: Reconnects | None
) -> AsyncGenerator[tuple[object, bool], None]:
    """(entry, restarted) for every entry of the bucket, then every change, for ever; after a
    reconnect the watch starts over (`restarted` True for what it replays). Errors before the
    first entry propagate; later ones are retried."""
    started = False
    restarted = False
    with contextlib.ExitStack() as stack:
        came_back = stack.enter_context(reconnects.listen()) if reconnects else asyncio.Event()
        while True:
            came_back.clear()
            try:
                watcher = await kv.watchall()
            except Exception as err:
                if not started:
                    raise
                log.warning("watch of %s could not start again (%s); retrying", kv._name, err)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(came_back.wait(), RETRY_WAIT)
                continue
            started = True
            try:
                async for entry in _until_lost(watcher, came_back):
                    yield entry, restarted
            except _Lost:
                log.info("watch of %s: NATS connection made again; watching anew", kv._name)
                restarted = True
            finally:
                with contextlib.suppress(Exception):
                    await watcher.stop()


async def _until_lost(
    watcher: KeyValue.KeyWatcher, came_back: asyncio.Event
) -> AsyncGenerator[object, None]:
    back = asyncio.ensure_future(came_back.wait())
    following: asyncio.Future[object] | None = None
    try:
        while True:
            following = asyncio.ensure_future(anext(watcher))
            await asyncio.wait({following, back}, return_when=asyncio.FIRST_COMPLETED)
            if not following.done():
                following.cancel()
                raise _Lost
            try:
                entry = following.result()
            except StopAsyncIteration:
                raise _Lost from None  # the watcher was stopped under us
            yield entry
    finally:
        back.cancel()
        if following is not None:
            # Closed mid-wait: else watcher.stop() ends it with an error nobody retrieves.
            following.cancel()
