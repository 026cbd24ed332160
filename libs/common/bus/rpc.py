"""Request-reply over core NATS, msgspec JSON both ways: a responder that answers one subject,
and a request that waits for its answer.

Request subjects stay outside the WOLFPACK stream (`wolfpack-rpc.<service>.<...>`): the stream
would capture a request on `wolfpack.>` and answer it with its own publish ack.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import msgspec
import nats.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from libs.common.bus.connection import Bus
from libs.common.bus.consumer import DRAIN_WAIT
from libs.common.errors import WolfpackError
from libs.common.formats.decoding import decode_json

log = logging.getLogger("wolfpack.bus.rpc")

Req = TypeVar("Req", bound=msgspec.Struct)
Rep = TypeVar("Rep", bound=msgspec.Struct)


class NoAnswer(ConnectionError):
    """No usable answer: nobody serves the subject, it did not answer in time, NATS is
    unreachable, or the answer did not decode."""


class Responder(Generic[Req, Rep]):
    """Answers every request on one subject with `handler`'s reply. A request that does not
    decode, or that the handler refuses with a WolfpackError, is answered `refusal(error)`;
    the requester never waits for a timeout because of its own mistake."""

    def __init__(
        self,
        model: type[Req],
        handler: Callable[[Req], Awaitable[Rep]],
        refusal: Callable[[WolfpackError], Rep],
    ) -> None:
        self._model = model
        self._handler = handler
        self._refusal = refusal
        self._sub: Subscription | None = None

    async def start(self, bus: Bus, subject: str, queue: str) -> None:
        """Serve `subject`; replicas in one `queue` group share it, each request going to one."""
        self._sub = await bus.nc.subscribe(subject, queue=queue, cb=self._answer)
        # Our interest is on the server before we say we serve.
        await bus.nc.flush()

    async def stop(self) -> None:
        """Take no more requests; those already received are answered first."""
        sub, self._sub = self._sub, None
        if sub is None:
            return
        # Bounded: a drain racing the server's death would wait on nats.py's flush. An error
        # means the subscription already went with the connection.
        with contextlib.suppress(nats.errors.Error, TimeoutError):
            async with asyncio.timeout(DRAIN_WAIT):
                await sub.drain()

    async def _answer(self, msg: Msg) -> None:
        try:
            reply = await self._handler(decode_json(msg.data, self._model))
        except WolfpackError as err:
            reply = self._refusal(err)
        except Exception:
            log.exception("request on %s failed", msg.subject)
            reply = self._refusal(WolfpackError("internal error; see the service's log"))
        if not msg.reply:
            return  # published, not requested: nobody to answer
        try:
            await msg.respond(msgspec.json.encode(reply))
        except nats.errors.Error as err:
            # The requester times out and tries again.
            log.warning("could not answer a request on %s: %s", msg.subject, err)


async def request(
    bus: Bus, subject: str, message: msgspec.Struct, model: type[Rep], *, within: float
) -> Rep:
    """Send `message` on `subject` and decode the answer as `model`; NoAnswer if none comes
    `within` seconds (nats.py's own deadline, which also drops its wait for the answer)."""
    try:
        answer = await bus.nc.request(subject, msgspec.json.encode(message), timeout=within)
    except nats.errors.NoRespondersError:
        raise NoAnswer(f"nobody answers {subject}") from None
    except nats.errors.TimeoutError:
        raise NoAnswer(f"no answer on {subject} within {within:g} s") from None
    except nats.errors.Error as err:
        raise NoAnswer(f"cannot ask on {subject}: {err or type(err).__name__}") from None
    try:
        return msgspec.json.decode(answer.data, type=model)
    except msgspec.DecodeError as err:
        raise NoAnswer(f"undecodable answer on {subject}: {err}") from None
