"""A durable pull consumer of the WOLFPACK stream: the fetch loop that hands each event to its
handler, acknowledges it, retries a failed one with a growing delay, and tells NATS being away
from NATS having nothing to say."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext

log = logging.getLogger("wolfpack.bus")

T = TypeVar("T", bound=msgspec.Struct)
R = TypeVar("R")
Handler = Callable[[str, T], Awaitable[None]]

# Between tries after a failed fetch, and nats.py's wait between reconnects.
RECONNECT_WAIT = 1.0
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
