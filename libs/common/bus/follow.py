"""Following a KV bucket from outside the services (benchmarks, tests): a mirror of it on a
connection of its own, for the length of a block."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TypeVar

import msgspec

from libs.common.bus.connection import Bus
from libs.common.bus.mirror import Changed, Mirror

T = TypeVar("T", bound=msgspec.Struct)


@contextlib.asynccontextmanager
async def following(
    nats_url: str,
    client: str,
    bucket: str,
    model: type[T],
    on_change: Changed[T] | None = None,
) -> AsyncIterator[Mirror[T, T]]:
    """Connect to NATS as `client` and mirror KV `bucket`, telling `on_change` of every entry
    and then of every change. The block starts once the current entries are in; leaving it
    stops the watch and closes the connection."""
    bus = await Bus.connect(nats_url, client)
    try:
        mirror = Mirror(await bus.bucket(bucket, model), on_change)
        await mirror.start()
        try:
            yield mirror
        finally:
            await mirror.stop()
    finally:
        await bus.close()
