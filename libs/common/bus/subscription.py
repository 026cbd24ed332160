"""A live core-NATS subscription, typed: for watchers, CLIs and tests (no replay)."""

from __future__ import annotations

import contextlib
import logging
from typing import Generic, TypeVar

import msgspec
import nats.errors
from nats.aio.subscription import Subscription as NatsSubscription

log = logging.getLogger("wolfpack.bus")

T = TypeVar("T", bound=msgspec.Struct)


class Subscription(Generic[T]):
    """`async for subject, event in sub`; undecodable messages are logged and skipped."""

    def __init__(self, sub: NatsSubscription, model: type[T]) -> None:
        self._sub = sub
        self._decoder = msgspec.json.Decoder(model)

    def __aiter__(self) -> Subscription[T]:
        return self

    async def __anext__(self) -> tuple[str, T]:
        while True:
            msg = await self._sub.messages.__anext__()
            try:
                return msg.subject, self._decoder.decode(msg.data)
            except msgspec.DecodeError as err:
                log.warning("skipping undecodable message on %s: %s", msg.subject, err)

    async def stop(self) -> None:
        # An error here means the subscription already went with the connection.
        with contextlib.suppress(nats.errors.Error):
            await self._sub.unsubscribe()
