"""The last step of a service's shutdown: end every task still running, however stubborn.

asyncio.run cancels the tasks left at the end once and then waits for them without a limit.
A cancel can be lost: in Python 3.11 `asyncio.wait_for` returns (or raises) the result of
an inner future that finished together with the cancel, so a retry loop around it, such as
nats.py's reconnect loop catching OSError, runs on, and the process never exits (seen: an
overlayd still trying to reconnect an hour after `wolfpack up` was killed). So the tasks are
cancelled again while any is left, for a bounded time, and the caller learns which ignored it.
"""

from __future__ import annotations

import asyncio
from typing import Final

# A lost cancel needs the exact moment a wait ends: the next try lands in a sleep.
RECANCEL_EVERY: Final = 0.1


async def cancel_stragglers(within: float) -> list[str]:
    """Cancel every other task of this loop, again every RECANCEL_EVERY seconds while any is
    left, for up to `within` seconds; the names of those still running then."""
    loop = asyncio.get_running_loop()
    current = asyncio.current_task()
    deadline = loop.time() + within
    while True:
        left = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        if not left:
            return []
        if loop.time() >= deadline:
            return sorted(_described(t) for t in left)
        for task in left:
            task.cancel()
        await asyncio.wait(left, timeout=min(RECANCEL_EVERY, max(deadline - loop.time(), 0)))


def _described(task: asyncio.Task[object]) -> str:
    coro = task.get_coro()
    return f"{task.get_name()} ({getattr(coro, '__qualname__', type(coro).__name__)})"
