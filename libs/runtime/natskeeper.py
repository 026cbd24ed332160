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
from collections.abc import Callable
from typing import Final

from libs.common.natsd import NatsServer
from libs.runtime.natsdisk import refused_for_space

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
    loop = asyncio.get_running_loop()
    delay = INITIAL_DELAY
    disk_delay = DISK_FIRST
    while True:
        started = loop.time()
        refused = await _ended_or_refused(nats)
        uptime = loop.time() - started
        if uptime >= RESET_AFTER:
            delay, disk_delay = INITIAL_DELAY, DISK_FIRST
        if isinstance(refused, str):
            # Not at once: a disk that fills again right away would have the server restarting
            # in a loop, and the other streams are still being served.
            await asyncio.sleep(disk_delay)
            disk_delay = min(disk_delay * 2, DISK_LAST)
            log.warning(
                "nats-server refused a write for want of space (%s); there is room again "
                "under %s: restarting it so its streams take writes again",
                refused,
                nats.store_dir,
            )
            await nats.stop()
        else:
            log.warning(
                "nats-server exited with status %d after %.1fs; restarting", refused, uptime
            )
        while True:
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_DELAY)
            try:
                await nats.start(ready_within=RESTART_READY_WITHIN)
                break
            except (OSError, RuntimeError, TimeoutError) as exc:
                first = (str(exc).splitlines() or [type(exc).__name__])[0]
                log.error("nats-server did not come back (%s); trying again in %.1fs", first, delay)
        log.info("nats-server is back (pid %s)", nats.pid)
        if nats.pid is not None and on_start is not None:
            on_start(nats.pid)


async def _ended_or_refused(nats: NatsServer) -> int | str:
    """The exit status once the process ends, or the log line of a write it refused for want
    of space once its store has room again, whichever comes first."""
    ended = asyncio.ensure_future(nats.exited())
    refused = asyncio.ensure_future(refused_for_space(nats.log_path, nats.store_dir))
    try:
        done, _ = await asyncio.wait({ended, refused}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        # A cancelled wait leaves its thread until the process ends; stop() ends it.
        ended.cancel()
        refused.cancel()
    return ended.result() if ended in done else refused.result()
