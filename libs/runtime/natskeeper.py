"""Keep the embedded nats-server running: start it again if it dies.

The services ride out the gap themselves (they reconnect forever and their durable consumers
resume where they stopped); what they cannot do is bring the server back. JetStream's file
store is on disk, so the new process serves the same streams, buckets and consumers.

It also restarts a live server whose store ran out of space once space is back: until then
the streams that hit the full disk refuse every write (libs/runtime/natsdisk.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Final

from libs.common.bus.server import NatsServer
from libs.runtime.natsdisk import LogTail, Refusal, refused_for_space

# A restart may replay a large JetStream store before it listens.
RESTART_READY_WITHIN: Final = 60.0
INITIAL_DELAY: Final = 0.2
MAX_DELAY: Final = 30.0
# A server that stayed up this long was healthy: the next death starts the backoff over.
RESET_AFTER: Final = 30.0
# A restart for a full disk waits this long after room is back, twice as long each time the
# server refuses a write again within RESET_AFTER (a disk that keeps filling up).
DISK_FIRST: Final = 1.0
DISK_LAST: Final = 60.0


async def keep_running(
    nats: NatsServer,
    log: logging.Logger,
    on_start: Callable[[int], object] | None = None,
) -> None:
    """Run until cancelled, restarting `nats` whenever its process ends, or once its store
    has room again after it refused a write for want of space; `on_start(pid)` after each
    restart (the pid file)."""
    delay = INITIAL_DELAY
    disk_delay = DISK_FIRST
    log_offset: int | None = None  # the first server was started before us: watch from now
    while True:
        started = time.monotonic()
        ended = await _ended_or_refused(nats, log_offset)
        if isinstance(ended, Refusal):
            # Up to the refusal, not to when room came back: a server that refuses writes
            # again soon after its restart is a disk that keeps filling.
            if ended.seen_at - started >= RESET_AFTER:
                disk_delay = DISK_FIRST
            # Not at once: a disk that fills again right away would have the server restarting
            # in a loop, and the other streams are still being served.
            await asyncio.sleep(disk_delay)
            disk_delay = min(disk_delay * 2, DISK_LAST)
            log.warning(
                "nats-server refused a write for want of space (%s); there is room again "
                "under %s: restarting it so its streams take writes again",
                ended.line,
                nats.store_dir,
            )
            await nats.stop()
            wait = 0.0  # stopped on purpose: no crash backoff
        else:
            uptime = time.monotonic() - started
            if uptime >= RESET_AFTER:
                delay = INITIAL_DELAY
            log.warning("nats-server exited with status %d after %.1fs; restarting", ended, uptime)
            wait, delay = delay, min(delay * 2, MAX_DELAY)
        log_offset = LogTail.end_of(nats.log_path)  # lines of the new server start here
        while True:
            await asyncio.sleep(wait)
            try:
                await nats.start(ready_within=RESTART_READY_WITHIN)
                break
            except (OSError, RuntimeError, TimeoutError) as exc:
                wait, delay = delay, min(delay * 2, MAX_DELAY)
                first = (str(exc).splitlines() or [type(exc).__name__])[0]
                log.error("nats-server did not come back (%s); trying again in %.1fs", first, wait)
        log.info("nats-server is back (pid %s)", nats.pid)
        if nats.pid is not None and on_start is not None:
            on_start(nats.pid)


async def _ended_or_refused(nats: NatsServer, log_offset: int | None) -> int | Refusal:
    """The exit status once the process ends, or the refusal of a write for want of space
    (logged past `log_offset`) once its store has room again, whichever comes first."""
    ended = asyncio.ensure_future(nats.exited())
    refused = asyncio.ensure_future(
        refused_for_space(nats.log_path, nats.store_dir, offset=log_offset)
    )
    try:
        done, _ = await asyncio.wait({ended, refused}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        # A cancelled wait leaves its thread until the process ends; stop() ends it.
        ended.cancel()
        refused.cancel()
    return ended.result() if ended in done else refused.result()
