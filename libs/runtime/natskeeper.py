"""Keep the embedded nats-server running: start it again if it dies.

The services ride out the gap themselves (they reconnect forever and their durable consumers
resume where they stopped); what they cannot do is bring the server back. JetStream's file
store is on disk, so the new process serves the same streams, buckets and consumers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Final

from libs.common.natsd import NatsServer

# A restart may replay a large JetStream store before it listens.
RESTART_READY_WITHIN: Final = 60.0
INITIAL_DELAY: Final = 0.2
MAX_DELAY: Final = 30.0
# A server that stayed up this long was healthy: the next death starts the backoff over.
RESET_AFTER: Final = 30.0


async def keep_running(
    nats: NatsServer,
    log: logging.Logger,
    on_start: Callable[[int], object] | None = None,
) -> None:
    """Run until cancelled, restarting `nats` whenever its process ends; `on_start(pid)`
    after each restart (the pid file)."""
    loop = asyncio.get_running_loop()
    delay = INITIAL_DELAY
    while True:
        started = loop.time()
        status = await nats.exited()
        uptime = loop.time() - started
        if uptime >= RESET_AFTER:
            delay = INITIAL_DELAY
        log.warning("nats-server exited with status %d after %.1fs; restarting", status, uptime)
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
