"""Following a KV bucket from outside the services (benchmarks, tests): every current entry,
then every change, handed to a callback by a background task while a block runs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import msgspec

from libs.common.bus.connection import Bus

T = TypeVar("T", bound=msgspec.Struct)


@contextlib.asynccontextmanager
async def following(
    nats_url: str,
    client: str,
    bucket: str,
    model: type[T],
    seen: Callable[[str, T | None, int], None],
) -> AsyncIterator[None]:
    """Connect to NATS as `client` and pass (key, value or None when deleted, revision) of
    every entry of KV `bucket`, then of every change, to `seen`. The block starts once the
    current entries are through; leaving it stops the watch and closes the connection."""
    bus = await Bus.connect(nats_url, client)
    try:
        watched = await bus.bucket(bucket, model)
        ready = asyncio.Event()

        async def follow() -> None:
            async with contextlib.aclosing(watched.watch(ready)) as changes:
                async for key, value, revision in changes:
                    seen(key, value, revision)

        task = asyncio.create_task(follow())
        try:
            # A watch that fails before the current entries are through must not hang us.
            started = asyncio.ensure_future(ready.wait())
            await asyncio.wait({started, task}, return_when=asyncio.FIRST_COMPLETED)
            started.cancel()
            if task.done():
                task.result()  # its error, or "ended early"
                raise RuntimeError(f"the watch of KV {bucket} ended before it caught up")
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        await bus.close()
