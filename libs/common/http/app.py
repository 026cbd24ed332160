"""The HTTP edge every wolfpack service shares: app factory, error mapping, msgspec bodies, auth.

Domain code never imports FastAPI; a service's `api.py` decodes with `decode_body`, calls the
domain, and answers with `encode`. Typed errors from libs.common.errors become JSON `ErrorBody`
answers here, and only here.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Awaitable, Callable
from types import UnionType
from typing import Annotated, Any, Final, TypeVar, Union, get_args, get_origin

import msgspec
import nats.errors
import nats.js.errors
from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from libs.common import errors, names
from libs.common.formats.decoding import decode_json
from libs.common.models.api import ErrorBody
from libs.common.security.accepted_tokens import FixedToken, Tokens
from libs.common.store.full import StoreFull

T = TypeVar("T")

MiB: Final = 1024 * 1024
DEFAULT_BODY_LIMIT: Final = 8 * MiB
JSON: Final = "application/json"
YAML: Final = "application/yaml"
TEXT: Final = "text/plain"
BINARY: Final = "application/octet-stream"

STATUS: Final[dict[type[errors.WolfpackError], int]] = {
    errors.Invalid: 400,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
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
SCHEMA_REF: Final = "#/components/schemas/{name}"
# Key under which `body_schema` hands its schema components to the OpenAPI builder.
_COMPONENTS_KEY: Final = "x-wolfpack-components"


def encode(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response encoded by msgspec."""
    return Response(msgspec.json.encode(obj), status_code=status, headers=headers, media_type=JSON)


def error_response(
    status: int, message: str, field: str | None = None, headers: dict[str, str] | None = None
) -> Response:
    return encode(ErrorBody(error=message, field=field), status, headers)


def _size(limit: int) -> str:
    return f"{limit // MiB} MiB" if limit % MiB == 0 else f"{limit} bytes"


async def decode_body(request: Request, model: type[T]) -> T:
    """Decode the request body as `model`; any problem becomes `Invalid` naming the field."""
    return decode_json(await request.body(), model)


class BodyLimit:
    """Refuse request bodies over `limit` bytes with 413, declared or streamed."""

    class _TooLarge(Exception):
        pass

    def __init__(self, app: ASGIApp, limit: int = DEFAULT_BODY_LIMIT) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = error_response(
            413, f"request body is larger than the limit of {_size(self.limit)}"
        )
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await refusal(scope, receive, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise self._TooLarge
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except self._TooLarge:
            if started:
                raise
            await refusal(scope, receive, send)


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


async def _wolfpack_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.WolfpackError)
    status = next((code for cls, code in STATUS.items() if isinstance(exc, cls)), 400)
    headers = dict(BEARER_CHALLENGE) if status == 401 else None
    return error_response(status, exc.message, exc.field, headers)


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


def create_app(
    service: str, *, title: str, version: str, body_limit: int = DEFAULT_BODY_LIMIT
) -> FastAPI:
    """A FastAPI app with `/healthz`, wolfpack's error mapping, a body limit and msgspec docs."""
    app = FastAPI(title=title, version=version)

    @app.get("/healthz", openapi_extra=body_schema(response=dict[str, str]))
    async def healthz() -> Response:
        return encode({"service": service, "status": "ok"})

    app.add_exception_handler(errors.WolfpackError, _wolfpack_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(StoreFull, _store_full)  # 507 Insufficient Storage
    for unavailable in BUS_UNAVAILABLE:
        app.add_exception_handler(unavailable, _bus_unavailable)
    app.add_middleware(BodyLimit, limit=body_limit)
    # Added last, so outermost of ours: it also sees what the body limit lets through.
    app.add_middleware(CatchAll, log=logging.getLogger(f"wolfpack.{service}.http"))
    _install_openapi(app)
    return app


def openapi_schema_for(*models: Any) -> dict[str, Any]:
    """OpenAPI `components` for msgspec types: `{"schemas": {Name: JSON schema}}`."""
    _, components = msgspec.json.schema_components(models, ref_template=SCHEMA_REF)
    return {"schemas": components}


def _schema(model: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """JSON schema of `model` plus the components it refers to.

    A union of untagged Structs (`Node | MergedNode`, chosen by a query flag) cannot be
    decoded by msgspec, so it has no schema of its own: it becomes `anyOf` its members.
    """
    members = get_args(model) if get_origin(model) in (Union, UnionType) else (model,)
    schemas, components = msgspec.json.schema_components(members, ref_template=SCHEMA_REF)
    schema = schemas[0] if len(schemas) == 1 else {"anyOf": list(schemas)}
    return schema, components


def _raw_schema(media: str) -> dict[str, Any]:
    """The schema of a raw body: nodes.conf YAML is a mapping, a file is bytes, text a string."""
    if media == YAML:
        return {"type": "object"}
    if media == BINARY:
        return {"type": "string", "format": "binary"}
    return {"type": "string"}


def body_schema(
    *,
    request: Any = None,
    response: Any = None,
    status: int | tuple[int, ...] = 200,
    request_yaml: bool = False,
    request_raw: str | None = None,
    response_raw: tuple[str, ...] = (),
) -> dict[str, Any]:
    """`openapi_extra` for a route whose bodies are msgspec types (FastAPI can't see them).

    `status` may name several success codes (a PUT answers 201 when it creates).
    `request_raw` and `response_raw` document bodies that are not JSON by media type: YAML
    (nodes.conf), application/octet-stream (a file), text/plain (a script);
    `request_yaml` is `request_raw=YAML`.
    """
    extra: dict[str, Any] = {}
    components: dict[str, Any] = {}
    if request is not None:
        schema, more = _schema(request)
        components |= more
        extra["requestBody"] = {"required": True, "content": {JSON: {"schema": schema}}}
    raw = YAML if request_yaml else request_raw
    if raw is not None:
        content = {raw: {"schema": _raw_schema(raw)}}
        extra["requestBody"] = {"required": True, "content": content}
    answers: dict[str, Any] = {media: {"schema": _raw_schema(media)} for media in response_raw}
    if response is not None:
        schema, more = _schema(response)
        components |= more
        answers[JSON] = {"schema": schema}
    if answers:
        codes = (status,) if isinstance(status, int) else status
        extra["responses"] = {
            str(code): {"description": "OK", "content": copy.deepcopy(answers)} for code in codes
        }
    extra[_COMPONENTS_KEY] = components
    return extra


def _install_openapi(app: FastAPI) -> None:
    """Post-process FastAPI's schema: msgspec components in, its 422 bodies out, ErrorBody in."""
    default = app.openapi
    error_schema, error_components = _schema(ErrorBody)
    error_answer = {"description": "Error", "content": {JSON: {"schema": error_schema}}}

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = default()
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        schemas.update(error_components)
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                schemas.update(operation.pop(_COMPONENTS_KEY, {}))
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)
                responses.setdefault("default", error_answer)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


# The `Authorization: Bearer` header, declared so /docs offers to send it (immutable config).
Credentials = Annotated[
    HTTPAuthorizationCredentials | None,
    Depends(HTTPBearer(auto_error=False, description=f"the token in DATA/{names.TOKEN_FILE}")),
]


class TokenAuth:
    """Bearer-token checks as FastAPI dependencies: `Depends(auth.require_write)`.

    `require_write` guards every non-GET route; `require_read` guards GET routes unless the
    API was started with public reads. `tokens` is a fixed token or a
    libs.common.security.accepted_tokens.TokenFile, which follows `wolfpack token rotate`.
    """

    def __init__(self, tokens: str | Tokens, *, public_read: bool = False) -> None:
        self.public_read = public_read
        accepted = FixedToken(tokens) if isinstance(tokens, str) else tokens

        def check(credentials: HTTPAuthorizationCredentials | None) -> None:
            if credentials is None:
                raise errors.Unauthorized(
                    f"missing token: send 'Authorization: Bearer TOKEN' "
                    f"(TOKEN is in DATA/{names.TOKEN_FILE})"
                )
            accepted.check(credentials.credentials)

        async def require_write(
            credentials: Credentials,
        ) -> None:
            check(credentials)

        async def require_read(
            credentials: Credentials,
        ) -> None:
            if not public_read:
                check(credentials)

        self.require_write: Callable[..., Awaitable[None]] = require_write
        self.require_read: Callable[..., Awaitable[None]] = require_read
