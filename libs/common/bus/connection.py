"""The NATS layer: one connection, the WOLFPACK stream, durable consumers and the KV buckets.

Connection → JetStream → bucket, as nats.py chains them; payloads are msgspec JSON Structs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription
from nats.js import JetStreamContext, api

from libs.common import names, subjects
from libs.common.bus.auth import refused, shown_url
from libs.common.bus.kv import Bucket
from libs.common.bus.watch import Reconnects
from libs.common.errors import NotFound

log = logging.getLogger("wolfpack.bus")

T = TypeVar("T", bound=msgspec.Struct)
R = TypeVar("R")
Handler = Callable[[str, T], Awaitable[None]]

RECONNECT_WAIT = 1.0
# Server error code for "stream name already in use with a different configuration".
STREAM_NAME_IN_USE = 10058
KV_HISTORY = 5
# The stream keeps the newest events of each subject (`wolfpack.node.n1.boot`, ...), not all:
# every consumer needs only the newest of a subject (handlers read state from KV; a push is
# re-checked against the registry), and bootd replays at most its 32-stage timelines. No age
# limit: the builder's pushes live only in the stream (docs/reliability.md, "Hardening").
EVENTS_PER_SUBJECT = 64
# How long the server waits for an ack before redelivering; long handlers send progress.
ACK_WAIT = 30.0
# Long-poll length of one fetch; stop() interrupts it, so it only bounds idle round trips.
FETCH_WAIT = 5.0
# How long a fetch that timed out waits for the server to answer about its consumer before
# calling NATS away or really slow.
ANSWER_WAIT = 2.0
MAX_RETRY_DELAY = 60.0
# Seconds for a drain or a last flush: with the server there they take milliseconds; one
# racing the server's death would wait for nats.py's defaults (30 s, 10 s).
DRAIN_WAIT = 2


class NatsRefused(ConnectionError):
    """The server refused the connection's credentials: a token missing or wrong."""


class Bus:
    """A connected client. `nc` and `js` are the raw nats.py clients for anything not wrapped."""

    def __init__(self, nc: NATS, js: JetStreamContext) -> None:
        self.nc = nc
        self.js = js
        self._consumers: set[Consumer[Any]] = set()
        self.reconnects = Reconnects()

    @classmethod
    async def connect(cls, servers: str | list[str], name: str, token: str | None = None) -> Bus:
        """Connect (retrying forever, the first time too); make sure stream and buckets exist.
        `token`: the server's client token (`wolfpack up`'s embedded server wants one)."""
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
        await bus._ensure_stream()
        await bus._ensure_buckets()
        return bus

    async def _ensure_stream(self) -> None:
        config = api.StreamConfig(
            name=names.STREAM,
            subjects=[subjects.ALL],
            storage=api.StorageType.FILE,
            max_msgs_per_subject=EVENTS_PER_SUBJECT,
        )
        try:
            # Idempotent when the stream exists with the same config (services race here).
            await self.js.add_stream(config)
        except nats.js.errors.BadRequestError as err:
            if err.err_code != STREAM_NAME_IN_USE:
                raise
            # Made by an older version (no limit): the server trims it to the new one.
            await self.js.update_stream(config)

    async def _ensure_buckets(self) -> None:
        for bucket in names.BUCKETS:
            try:
                await self.js.create_key_value(
                    bucket=bucket, history=KV_HISTORY, storage=api.StorageType.FILE
                )
            except nats.js.errors.BadRequestError as err:
                # Exists with other settings (made by an older version, or by hand): use it.
                if err.err_code != STREAM_NAME_IN_USE:
                    raise

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


class Consumer(Generic[T]):
    """The fetch loop of one durable pull consumer."""

    def __init__(
        self,
        nc: NATS,
        psub: JetStreamContext.PullSubscription,
        durable: str,
        model: type[T],
        handler: Handler[T],
        *,
        batch: int,
        retry_delay: float,
        ack_wait: float = ACK_WAIT,
        concurrency: int = 1,
    ) -> None:
        self.durable = durable
        self._nc = nc
        self._psub = psub
        self._decoder = msgspec.json.Decoder(model)
        self._handler = handler
        self._batch = batch
        self._retry_delay = retry_delay
        self._ack_wait = ack_wait
        self._concurrency = concurrency
        self._handling: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        # The fetch (or the check after one) waiting on NATS: wake() and stop() cancel it.
        self._in_flight: asyncio.Future[Any] | None = None
        self._stopping = False
        # When NATS stopped answering this consumer's fetches (None: it answers).
        self._lost_since: float | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"consumer {self.durable}")

    def wake(self) -> None:
        """Drop the pull request in flight (a reconnect loses it) and ask the server again."""
        if self._in_flight is not None:
            self._in_flight.cancel()

    async def stop(self) -> None:
        """Stop fetching; an event being handled is finished first. The durable stays."""
        if self._stopping or self._task is None:
            return
        self._stopping = True
        self.wake()
        await asyncio.wait([self._task])
        try:
            await self._psub.unsubscribe()
            if self._nc.is_connected:  # else a flush would wait for a server that is gone
                # The last acks reach the server before we say stopped.
                await self._nc.flush(timeout=DRAIN_WAIT)
        except (nats.errors.Error, OSError):
            pass  # connection already closed or draining: the subscription is gone with it

    async def _run(self) -> None:
        while not self._stopping:
            try:
                if self._concurrency > 1:
                    await self._next_parallel()
                else:
                    await self._next_batch()
            except Exception:
                # A consumer that dies quietly would leave its service deaf; keep going.
                log.exception("consumer %s: unexpected error; carrying on", self.durable)
                await asyncio.sleep(RECONNECT_WAIT)
        if self._handling:
            await asyncio.wait(set(self._handling))

    async def _next_batch(self) -> None:
        msgs = await self._fetch(self._batch)
        for i, msg in enumerate(msgs):
            if self._stopping:
                # Hand the rest back now rather than after ACK_WAIT.
                for rest in msgs[i:]:
                    await self._reply(rest.nak())
                return
            await self._handle(msg)

    async def _next_parallel(self) -> None:
        """Fetch only as many events as there are free handlers, so none waits unstarted
        (and unkept alive) behind a slow one."""
        free = self._concurrency - len(self._handling)
        if free <= 0:
            await asyncio.wait(set(self._handling), return_when=asyncio.FIRST_COMPLETED)
            return
        msgs = await self._fetch(min(free, self._batch))
        for i, msg in enumerate(msgs):
            if self._stopping:
                for rest in msgs[i:]:
                    await self._reply(rest.nak())
                return
            task = asyncio.create_task(self._handle(msg), name=f"{self.durable} {msg.subject}")
            self._handling.add(task)
            task.add_done_callback(self._handling.discard)

    async def _fetch(self, batch: int) -> list[Msg]:
        try:
            msgs = await self._interruptible(self._psub.fetch(batch, timeout=FETCH_WAIT))
        except TimeoutError:  # nats.errors.TimeoutError is one too
            # How nats.py ends a long poll that found no event: its own TimeoutError when the
            # server's "request timeout" came back as the wait ran out (client.py, _fetch_n:
            # no time left for a second pull), nats.errors.TimeoutError when the client's
            # clock ran out first. An unanswered pull ends the same way: ask NATS which it was.
            await self._check_nats()
            return []
        except nats.errors.ConnectionClosedError:
            self._stopping = True
            return []
        except nats.errors.Error as err:
            # Reconnecting, or the server is busy: try again shortly.
            self._lost(_reason(err))
            await asyncio.sleep(RECONNECT_WAIT)
            return []
        if msgs is None:
            return []  # woken: asked to stop, or to ask again after a reconnect
        self._answered()
        return msgs

    async def _check_nats(self) -> None:
        """After a fetch that timed out: normal if the server answers about the consumer,
        else NATS is away or really slow."""
        if not self._nc.is_connected:
            self._lost("disconnected")
            return
        try:
            async with asyncio.timeout(ANSWER_WAIT):
                info = await self._interruptible(self._psub.consumer_info())
        except TimeoutError:
            self._lost(f"no answer within {ANSWER_WAIT:g}s")
            return
        except nats.errors.Error as err:
            self._lost(_reason(err))
            return
        if info is not None:
            log.debug("consumer %s: no event within %gs", self.durable, FETCH_WAIT)
            self._answered()

    async def _interruptible(self, wait: Awaitable[R]) -> R | None:
        """`wait` in a task of its own, so wake() and stop() can cancel it but never a
        handler; None when they did."""
        waiting = asyncio.ensure_future(wait)
        self._in_flight = waiting
        try:
            await asyncio.wait([waiting])
        finally:
            self._in_flight = None
            waiting.cancel()
        return None if waiting.cancelled() else waiting.result()

    def _lost(self, why: str) -> None:
        """NATS did not answer: one warning per outage, the rest at debug."""
        if self._lost_since is None:
            self._lost_since = asyncio.get_running_loop().time()
            log.warning("consumer %s: NATS not answering (%s); asking again", self.durable, why)
        else:
            log.debug("consumer %s: NATS still not answering (%s)", self.durable, why)

    def _answered(self) -> None:
        if self._lost_since is not None:
            away = asyncio.get_running_loop().time() - self._lost_since
            self._lost_since = None
            log.info("consumer %s: NATS answers again (after %.1fs)", self.durable, away)

    async def _handle(self, msg: Msg) -> None:
        meta = msg.metadata
        try:
            event = self._decoder.decode(msg.data)
        except msgspec.DecodeError as err:
            log.error(
                "consumer %s: dropping undecodable event %s #%d: %s",
                self.durable,
                msg.subject,
                meta.sequence.stream,
                err,
            )
            await self._reply(msg.term())
            return
        keepalive = asyncio.create_task(self._keep_alive(msg))
        try:
            await self._handler(msg.subject, event)
        except Exception:
            delay = min(self._retry_delay * 2 ** (meta.num_delivered - 1), MAX_RETRY_DELAY)
            log.exception(
                "consumer %s: handler failed on %s #%d (delivery %d); retrying in %gs",
                self.durable,
                msg.subject,
                meta.sequence.stream,
                meta.num_delivered,
                delay,
            )
            await self._reply(msg.nak(delay=delay))
        else:
            await self._reply(msg.ack())
        finally:
            keepalive.cancel()

    async def _keep_alive(self, msg: Msg) -> None:
        """Tell the server a slow handler is still working, so it does not redeliver."""
        while True:
            await asyncio.sleep(self._ack_wait / 3)
            await self._reply(msg.in_progress())

    async def _reply(self, reply: Awaitable[None]) -> None:
        try:
            await reply
        except nats.errors.Error as err:
            # Lost with the connection; the server redelivers after ACK_WAIT.
            log.warning("consumer %s: could not answer the server: %s", self.durable, err)


def _reason(err: nats.errors.Error) -> str:
    """A nats error for a log line (nats.py prints an API error's empty fields)."""
    if isinstance(err, nats.js.errors.APIError):
        return err.description or type(err).__name__
    return str(err) or type(err).__name__


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
