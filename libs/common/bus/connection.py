"""The NATS layer: one connection, the WOLFPACK stream, durable consumers and the KV buckets.

Connection → JetStream → bucket, as nats.py chains them; payloads are msgspec JSON Structs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any, Final, TypeVar

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext, api

from libs.common import names, subjects
from libs.common.bus.auth import refused, shown_url
from libs.common.bus.consumer import ACK_WAIT, DRAIN_WAIT, RECONNECT_WAIT, Consumer, Handler
from libs.common.bus.kv import Bucket
from libs.common.bus.replicas import replicas_for
from libs.common.bus.retention import MIN_BYTES, Retention
from libs.common.bus.subscription import Subscription
from libs.common.bus.watch import Reconnects
from libs.common.errors import NotFound

log = logging.getLogger("wolfpack.bus")

T = TypeVar("T", bound=msgspec.Struct)

# Server error code for "stream name already in use with a different configuration".
STREAM_NAME_IN_USE = 10058
# Server error code for "insufficient storage resources available".
INSUFFICIENT_STORAGE = 10047
# Revisions kept per key. The relay (relay.py) publishes each write's event from there: a
# key written more often than this while its relay is away (ACK_WAIT after a replica died)
# would lose the oldest events. `boot` has a key per node and one writer (overlayd, which
# runs its relay): a shorter history keeps 100,000 manifests' history small.
KV_HISTORY: Final[dict[str, int]] = {names.BUCKET_BOOT: 8}
KV_HISTORY_DEFAULT: Final = 64
# How long the stream remembers a message id: a relay that died between its publish and its
# ack publishes again when it is back (or another takes over), and this drops the copy.
DUPLICATE_WINDOW: Final = 600.0
# How long connecting waits for JetStream to make streams (a new cluster's first election).
SETUP_WAIT: Final = 60.0


def stream_config(retention: Retention) -> api.StreamConfig:
    """The WOLFPACK stream: every `wolfpack.>` event, on disk, the oldest discarded first once
    older than `retention.max_age` or past `retention.max_bytes` (docs/events.md,
    "Retention and replay"); message ids remembered DUPLICATE_WINDOW (no longer than events
    are kept: nats-server refuses that)."""
    window = DUPLICATE_WINDOW
    if retention.max_age:
        window = min(window, retention.max_age)
    return api.StreamConfig(
        name=names.STREAM,
        subjects=[subjects.ALL],
        storage=api.StorageType.FILE,
        discard=api.DiscardPolicy.OLD,
        max_age=retention.max_age,  # seconds; 0 is no limit
        max_bytes=retention.max_bytes or -1,
        duplicate_window=window,
    )


class NatsRefused(ConnectionError):
    """The server refused the connection's credentials: a token missing or wrong."""


class Bus:
    """A connected client. `nc` and `js` are the raw nats.py clients for anything not wrapped."""

    def __init__(self, nc: NATS, js: JetStreamContext) -> None:
        self.nc = nc
        self.js = js
        self._consumers: set[Consumer[Any]] = set()
        self.reconnects = Reconnects()
        # Copies of each stream and bucket this bus makes (replicas.py).
        self.replicas = 1

    @classmethod
    async def connect(
        cls,
        servers: str | list[str],
        name: str,
        token: str | None = None,
        retention: Retention | None = None,
        replicas: int | None = None,
    ) -> Bus:
        """Connect (retrying forever, the first time too); make sure stream and buckets exist.
        `token`: the server's client token (`wolfpack up`'s embedded server wants one).
        `retention`: the stream's limits, set even on an existing stream (what a service does
        with its settings); None leaves an existing stream as it is (CLIs, tests, benches).
        `replicas`: copies of each stream and bucket made; None: 3 on a cluster of three
        servers or more, else 1 (replicas.py)."""
        nc = NATS()
        bus = cls(nc, nc.jetstream())

        async def on_disconnect() -> None:
            if not nc.is_closed:  # closing on purpose is not news
                log.warning("%s: disconnected from NATS; reconnecting", name)

        async def on_reconnect() -> None:
            where = nc.connected_url.geturl() if nc.connected_url else "?"
            log.info("%s: reconnected to NATS at %s", name, shown_url(where))
            for consumer in bus._consumers:
                consumer.wake()
            bus.reconnects.fire()

        first_refusal: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def on_error(err: Exception) -> None:
            if refused(err) and not first_refusal.done():
                first_refusal.set_result(None)  # wrong or missing token: retrying won't help
                return  # NatsRefused says it, once
            log.warning("%s: NATS: %s", name, err or type(err).__name__)

        connecting = asyncio.ensure_future(
            nc.connect(
                servers=servers,
                name=name,
                max_reconnect_attempts=-1,
                reconnect_time_wait=RECONNECT_WAIT,  # type: ignore[arg-type]  # an int in types
                drain_timeout=DRAIN_WAIT,
                disconnected_cb=on_disconnect,
                reconnected_cb=on_reconnect,
                error_cb=on_error,
                token=token,
            )
        )
        await asyncio.wait({connecting, first_refusal}, return_when=asyncio.FIRST_COMPLETED)
        if not connecting.done():
            connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await connecting
            await nc.close()
            where = servers if isinstance(servers, str) else ",".join(servers)
            raise NatsRefused(
                f"NATS at {shown_url(where)} refused our credentials (Authorization Violation): "
                f"a wolfpack up's server wants DATA/{names.NATS_TOKEN_FILE}, readable by its "
                "owner only"
            )
        first_refusal.cancel()
        connecting.result()
        bus.replicas = replicas or replicas_for(nc._server_info)
        # A cluster just started answers clients before it has elected the leader that
        # makes streams: wait for it, within reason.
        async with asyncio.timeout(SETUP_WAIT):
            while True:
                try:
                    await bus._ensure_stream(retention)
                    await bus._ensure_buckets()
                    return bus
                except (nats.errors.TimeoutError, nats.js.errors.ServiceUnavailableError) as err:
                    log.info("%s: JetStream not ready yet (%s); asking again", name, err)
                    await asyncio.sleep(RECONNECT_WAIT)

    async def _ensure_stream(self, retention: Retention | None) -> None:
        if retention is None:
            try:
                await self.js.stream_info(names.STREAM)
                return  # its limits are the services' to set
            except nats.js.errors.NotFoundError:
                pass
        config = stream_config(retention or Retention())
        config.num_replicas = self.replicas
        wanted = config.max_bytes
        while True:
            try:
                await self._make_stream(config, update=retention is not None)
                break
            except nats.js.errors.APIError as err:
                # nats-server sets a stream's size limit aside on its disk: a small disk (or
                # a small JetStream max_file_store) refuses 1 GiB. Keep what fits, and say so.
                if err.err_code != INSUFFICIENT_STORAGE or (config.max_bytes or 0) <= MIN_BYTES:
                    raise
                config.max_bytes = max((config.max_bytes or 0) // 2, MIN_BYTES)
        if config.max_bytes != wanted:
            # What fits is all JetStream has left: keep half of it for the KV buckets.
            config.max_bytes = max((config.max_bytes or 0) // 2, MIN_BYTES)
            await self.js.update_stream(config)
            log.warning(
                "NATS has no room for %d bytes of events: the %s stream keeps at most %d "
                "(give JetStream more disk, or lower --events-max-bytes)",
                wanted,
                names.STREAM,
                config.max_bytes,
            )

    async def _make_stream(self, config: api.StreamConfig, *, update: bool) -> None:
        try:
            # Idempotent when the stream exists with the same config (services race here).
            await self.js.add_stream(config)
        except nats.js.errors.BadRequestError as err:
            if err.err_code != STREAM_NAME_IN_USE:
                raise
            if not update:
                return  # a service made it meanwhile, with its limits
            # Made with other limits (an older version, other settings): the server trims it
            # to the new ones at once.
            await self.js.update_stream(config)

    async def _ensure_buckets(self) -> None:
        for bucket in names.BUCKETS:
            history = KV_HISTORY.get(bucket, KV_HISTORY_DEFAULT)
            try:
                await self.js.create_key_value(
                    bucket=bucket,
                    history=history,
                    storage=api.StorageType.FILE,
                    replicas=self.replicas,
                )
            except nats.js.errors.BadRequestError as err:
                # Exists with other settings (made by an older version, or by hand): use it,
                # with at least the history its relay needs.
                if err.err_code != STREAM_NAME_IN_USE:
                    raise
                await self._raise_history(bucket, history)

    async def _raise_history(self, bucket: str, history: int) -> None:
        """At least `history` revisions per key and this bus's replicas (a server that
        joined a cluster gets its buckets copied to the new peers)."""
        info = await self.js.stream_info(f"KV_{bucket}")
        config = info.config
        if (config.max_msgs_per_subject or 0) >= history and (
            config.num_replicas or 1
        ) >= self.replicas:
            return
        config.max_msgs_per_subject = max(config.max_msgs_per_subject or 0, history)
        config.num_replicas = max(config.num_replicas or 1, self.replicas)
        await self.js.update_stream(config)

    async def publish(
        self, subject: str, event: msgspec.Struct, *, msg_id: str | None = None
    ) -> int:
        """Publish to the stream; returns the stream sequence. `msg_id` de-duplicates retries."""
        headers = {api.Header.MSG_ID.value: msg_id} if msg_id else None
        ack = await self.js.publish(subject, msgspec.json.encode(event), headers=headers)
        return ack.seq

    async def consume(
        self,
        subjects: str | Sequence[str],
        durable: str,
        model: type[T],
        handler: Handler[T],
        *,
        batch: int = 64,
        retry_delay: float = 1.0,
        ack_wait: float = ACK_WAIT,
        concurrency: int = 1,
    ) -> Consumer[T]:
        """Run `handler` for every event on `subjects`, from where durable `durable` left off.

        Delivery is at least once: a handler may see an event again after a crash, so it must
        be idempotent (read current state from KV rather than trusting the event's order).
        `concurrency` > 1 runs up to that many handlers at once (events then end out of order).
        """
        filters = [subjects] if isinstance(subjects, str) else list(subjects)
        config = api.ConsumerConfig(
            name=durable,
            durable_name=durable,
            deliver_policy=api.DeliverPolicy.ALL,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=ack_wait,
        )
        if len(filters) == 1:
            config.filter_subject = filters[0]
        else:
            config.filter_subjects = filters
        # Creates, or updates the filters of, the durable consumer.
        await self.js.add_consumer(names.STREAM, config)
        psub = await self.js.pull_subscribe_bind(durable=durable, stream=names.STREAM)
        consumer = Consumer(
            self.nc,
            psub,
            durable,
            model,
            handler,
            batch=batch,
            retry_delay=retry_delay,
            ack_wait=ack_wait,
            concurrency=concurrency,
        )
        self._consumers.add(consumer)
        consumer.start()
        return consumer

    async def subscribe(self, subject: str, model: type[T]) -> Subscription[T]:
        """A live core-NATS subscription (no replay): for watchers, CLIs and tests."""
        sub = await self.nc.subscribe(subject)
        # A round trip: the server has our interest before we return, so an event published
        # right after (by another process) is not missed.
        await self.nc.flush()
        return Subscription(sub, model)

    async def bucket(self, name: str, model: type[T]) -> Bucket[T]:
        try:
            return Bucket(await self.js.key_value(name), model, self.reconnects)
        except nats.js.errors.BucketNotFoundError:
            raise NotFound(f"no KV bucket {name!r}", field="bucket") from None

    async def close(self) -> None:
        """Stop the consumers (each finishes its current event), then drain the connection."""
        await asyncio.gather(*(c.stop() for c in self._consumers))
        self._consumers.clear()
        try:
            if self.nc.is_connected:
                # nats.py's drain ends with a flush of its own that waits 10 s for a server
                # that died mid-drain: bound the whole of it.
                with contextlib.suppress(nats.errors.Error, OSError, TimeoutError):
                    async with asyncio.timeout(2 * DRAIN_WAIT):
                        await self.nc.drain()
        finally:
            # No server to drain to (it went away with us, or we are reconnecting): nats.py
            # refuses to drain or gives up, and its reconnect loop would run on.
            if not self.nc.is_closed:
                with contextlib.suppress(OSError):  # buffered writes to a dead socket
                    await self.nc.close()
