"""The one thing domain code needs from the bus to announce a change: publish an event."""

from __future__ import annotations

from typing import Protocol

import msgspec


class Publisher(Protocol):
    """libs.common.bus.connection.Bus, as the registry, builder and overlayd domains see it."""

    async def publish(
        self, subject: str, event: msgspec.Struct, *, msg_id: str | None = None
    ) -> int: ...
