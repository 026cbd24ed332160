"""The relay: every change to a KV bucket becomes its event in the WOLFPACK stream, even when
the service that wrote it died before it could publish.

A durable push consumer follows the bucket's own stream (`KV_<bucket>`). For each stored
write it publishes the event the write announced in its headers (announce.py), with the
message id `kv.<bucket>.<revision>`, and only then acknowledges the write. A relay that dies
in between has the write delivered again and publishes it again; the stream's de-duplication
window drops the copy. Every replica of the writing service runs the relay in one delivery
group, so each write is relayed by one of them and a dead one's writes go to the others
after ACK_WAIT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Final

import msgspec
import nats.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import api
from nats.js.kv import KV_DEL, KV_OP, KV_PURGE

from libs.common.bus.announce import Announced, Announcement, read
from libs.common.bus.connection import Bus

log = logging.getLogger("wolfpack.relay")

# How long a write handed to a relay waits for its ack before another relay gets it.
ACK_WAIT: Final = 5.0
# Writes handed out and not yet relayed, per bucket.
MAX_PENDING: Final = 1024
# How long a relay waits before it tries a write whose event NATS refused.
RETRY_DELAY: Final = 1.0
# How long a publish may wait for the stream's answer (nats.py's own wait has no end).
PUBLISH_WAIT: Final = 5.0


class KvChange(msgspec.Struct, frozen=True):
    """One stored write of a bucket, as the relay sees it."""

    bucket: str
    key: str
    revision: int
    deleted: bool
    value: bytes


# The event of a write that announced none (made by hand, or by an older wolfpack); None:
# the write has no event.
Fallback = Callable[[KvChange], Announcement | None]


def durable(bucket: str) -> str:
    return f"relay-{bucket}"


def deliver_subject(bucket: str) -> str:
    # Outside `wolfpack.>`: the WOLFPACK stream must not capture the relay's own deliveries.
    return f"_wolfpack.relay.{bucket}"


def msg_id(bucket: str, revision: int) -> str:
    return f"kv.{bucket}.{revision}"


class Relay:
    """Relays one bucket's writes while started."""

    def __init__(self, bus: Bus, bucket: str, fallback: Fallback | None = None) -> None:
        self.bucket = bucket
        self._bus = bus
        self._fallback = fallback
        self._sub: Subscription | None = None
        self._prefix = f"$KV.{bucket}."
        self._settling: set[asyncio.Task[None]] = set()
        self.relayed = 0  # events published by this relay (duplicates included)

    async def start(self) -> None:
        config = api.ConsumerConfig(
            name=durable(self.bucket),
            durable_name=durable(self.bucket),
            # Created once, with the bucket's history already announced (or from before
            # events were relayed): only writes from now on. Resumed from its ack floor after.
            deliver_policy=api.DeliverPolicy.NEW,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=ACK_WAIT,
            max_ack_pending=MAX_PENDING,
            filter_subject=f"{self._prefix}>",
            deliver_subject=deliver_subject(self.bucket),
            deliver_group=durable(self.bucket),
        )
        await self._bus.js.add_consumer(f"KV_{self.bucket}", config)
        self._sub = await self._bus.nc.subscribe(
            deliver_subject(self.bucket), queue=durable(self.bucket), cb=self._on_write
        )

    async def stop(self) -> None:
        """Stop taking writes; the one being relayed finishes. Unacknowledged ones go to the
        other relays (or to this one's next start)."""
        if self._sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._sub.unsubscribe()
            self._sub = None
        if self._settling:
            await asyncio.wait(set(self._settling))

    async def _on_write(self, msg: Msg) -> None:
        try:
            change = self._change(msg)
        except (nats.errors.Error, ValueError) as err:
            log.error("relay %s: unreadable write on %s: %s", self.bucket, msg.subject, err)
            await _answer(msg.term())
            return
        found = read(msg.headers)
        event: Announced | None = found
        if event is None and self._fallback is not None:
            made = self._fallback(change)
            if made is not None:
                event = Announced(made.subject, msgspec.to_builtins(made.event))
        if event is None:
            # A value written by hand to a bucket whose events only its service can say.
            log.debug(
                "relay %s: write %d of %s announced no event", self.bucket, change.revision,
                change.key,
            )  # fmt: skip
            await _answer(msg.ack())
            return
        try:
            # Not awaited here: the next writes are published while this one's ack is on its
            # way (one at a time, a relay falls behind a busy writer).
            acked = await self._bus.js.publish_async(
                event.subject,
                event.payload(change.revision),
                headers={api.Header.MSG_ID.value: msg_id(self.bucket, change.revision)},
            )
        except nats.errors.Error as err:
            await self._again(msg, event, change, err)
            return
        settle = asyncio.create_task(self._settle(msg, acked, event, change))
        self._settling.add(settle)
        settle.add_done_callback(self._settling.discard)

    async def _settle(
        self, msg: Msg, acked: asyncio.Future[api.PubAck], event: Announced, change: KvChange
    ) -> None:
        """Acknowledge the write once the stream has its event; else hand it back."""
        try:
            async with asyncio.timeout(PUBLISH_WAIT):
                await acked
        except (nats.errors.Error, TimeoutError) as err:
            acked.cancel()
            await self._again(msg, event, change, err)
            return
        self.relayed += 1
        await _answer(msg.ack())

    async def _again(self, msg: Msg, event: Announced, change: KvChange, err: Exception) -> None:
        # Not acknowledged: the write comes back, to us or to another relay.
        log.warning(
            "relay %s: could not publish %s (write %d): %s; trying again",
            self.bucket, event.subject, change.revision, err or type(err).__name__,
        )  # fmt: skip
        await _answer(msg.nak(delay=RETRY_DELAY))

    def _change(self, msg: Msg) -> KvChange:
        if not msg.subject.startswith(self._prefix):
            raise ValueError(f"not a key of {self.bucket}")
        op = (msg.headers or {}).get(KV_OP)
        return KvChange(
            bucket=self.bucket,
            key=msg.subject[len(self._prefix) :],
            revision=msg.metadata.sequence.stream,
            deleted=op in (KV_DEL, KV_PURGE),
            value=msg.data,
        )


async def _answer(reply: Awaitable[None]) -> None:
    """Ack, nak or term; lost with the connection, the server redelivers after ACK_WAIT."""
    try:
        await reply
    except nats.errors.Error as err:
        log.warning("relay: could not answer the server: %s", err)


async def start_relays(bus: Bus, buckets: dict[str, Fallback | None]) -> list[Relay]:
    relays = [Relay(bus, bucket, fallback) for bucket, fallback in buckets.items()]
    for relay in relays:
        await relay.start()
    return relays
