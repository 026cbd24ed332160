"""Failures become answers here, and only here: the typed errors of libs.common.errors (and
the store's) mapped to HTTP statuses, NATS being away to 503, FastAPI's own errors to an
`ErrorBody`, and anything unexpected to a generic 500 (`CatchAll`)."""

from __future__ import annotations

import asyncio
import logging
from typing import Final

import nats.errors
import nats.js.errors
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from libs.common import errors
from libs.common.http.bodies import error_response
from libs.common.store.full import StoreFull
from libs.common.store.verified import BlobCorrupt

# The first class an error is an instance of decides; a WolfpackError not named is a 400.
STATUS: Final[dict[type[errors.WolfpackError], int]] = {
    errors.Invalid: 400,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    # A stored blob no longer hashes to its name: the server's store is at fault, not the
    # request.
    BlobCorrupt: 500,
}
BEARER_CHALLENGE: Final = {"WWW-Authenticate": "Bearer"}
# NATS down or restarting: the request may be tried again in a moment (a write is idempotent
# to retry; if it was stored before the bus went, the retry finds it stored).
BUS_UNAVAILABLE: Final = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionClosedError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.StaleConnectionError,
    nats.js.errors.ServiceUnavailableError,
    # What a JetStream publish says for "no responders": no stream (yet) for the subject,
    # e.g. while a restarted nats-server recovers its streams.
    nats.js.errors.NoStreamResponseError,
)
BUS_RETRY_AFTER: Final = "1"


def status_of(err: errors.WolfpackError) -> int:
    """The HTTP status of a typed error."""
    return next((code for cls, code in STATUS.items() if isinstance(err, cls)), 400)


def error_answer(err: errors.WolfpackError) -> Response:
    """The answer to a typed error: its status, its message and field, and a 401 says to send
    the bearer token."""
    status = status_of(err)
    headers = dict(BEARER_CHALLENGE) if status == 401 else None
    return error_response(status, err.message, err.field, headers)


async def _wolfpack_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.WolfpackError)
    return error_answer(exc)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(part) for part in first.get("loc", ())]
    where, field = (loc[0], ".".join(loc[1:])) if len(loc) > 1 else ("request", None)
    return error_response(400, f"invalid {where} parameter: {first.get('msg', 'bad value')}", field)


async def _bus_unavailable(request: Request, exc: Exception) -> Response:
    reason = str(exc) or type(exc).__name__
    return error_response(
        503,
        f"the message bus (NATS) is unavailable: {reason}; try again",
        headers={"Retry-After": BUS_RETRY_AFTER},
    )


async def _store_full(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StoreFull)
    return error_response(507, exc.advice)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))


def add_error_handlers(app: FastAPI) -> None:
    """Every failure a route may raise on purpose, answered as an `ErrorBody`."""
    app.add_exception_handler(errors.WolfpackError, _wolfpack_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(StoreFull, _store_full)  # 507 Insufficient Storage
    for unavailable in BUS_UNAVAILABLE:
        app.add_exception_handler(unavailable, _bus_unavailable)


class CatchAll:
    """Turn an unexpected exception into a generic 500; the traceback goes to the log only.
    A client that disconnects mid-request is not an error: one line, and no answer. A request
    the server gives up on as it stops is a 503: the client may try again elsewhere or later."""

    def __init__(self, app: ASGIApp, log: logging.Logger) -> None:
        self.app = app
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watching_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watching_send)
        except asyncio.CancelledError:
            # uvicorn cancels what still runs when its graceful shutdown ends, e.g. a write
            # waiting on a NATS that is going away with us; its own answer would be a bare 500.
            # Only that: a CancelledError from a future someone else cancelled is a bug (500).
            task = asyncio.current_task()
            if started or task is None or not task.cancelling():
                raise
            task.uncancel()
            self.log.warning(
                "%s %s: stopping before it finished; answered 503",
                scope.get("method"),
                scope.get("path"),
            )
            answer = error_response(
                503,
                "the service is stopping and did not finish this request; try again",
                headers={"Retry-After": BUS_RETRY_AFTER, "Connection": "close"},
            )
            await answer(scope, receive, send)
        except ClientDisconnect:
            # The client went away before its request was whole: nobody is left to answer.
            self.log.info(
                "%s %s: the client left mid-request", scope.get("method"), scope.get("path")
            )
        except Exception:
            self.log.exception("%s %s failed", scope.get("method"), scope.get("path"))
            if started:
                return
            answer = error_response(500, "internal error; the service log has the details")
            await answer(scope, receive, send)
