"""A service's last shutdown step ends tasks that lose a cancel, and names those that never
end, instead of waiting for them for ever as asyncio.run does."""

from __future__ import annotations

import asyncio

from libs.runtime.stragglers import cancel_stragglers


async def test_a_task_that_lost_its_cancel_is_cancelled_again() -> None:
    swallowed, started = asyncio.Event(), asyncio.Event()

    async def retry_loop() -> None:
        started.set()
        # As nats.py's reconnect loop when 3.11's wait_for turns a cancel into the
        # connection error that came at the same moment: it catches that and tries again.
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if swallowed.is_set():
                    raise
                swallowed.set()

    task = asyncio.create_task(retry_loop(), name="reconnect")
    await started.wait()
    assert await cancel_stragglers(5.0) == []
    assert swallowed.is_set() and task.cancelled()


async def test_a_task_that_never_ends_is_named_after_the_limit() -> None:
    released, started = asyncio.Event(), asyncio.Event()

    async def deaf() -> None:
        started.set()
        while not released.is_set():
            try:
                await released.wait()
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(deaf(), name="deaf")
    await asyncio.sleep(0)
    try:
        assert await cancel_stragglers(0.3) == [
            "deaf (test_a_task_that_never_ends_is_named_after_the_limit.<locals>.deaf)"
        ]
    finally:
        released.set()
        await task


async def test_nothing_left_is_nothing_to_wait_for() -> None:
    assert await cancel_stragglers(5.0) == []
