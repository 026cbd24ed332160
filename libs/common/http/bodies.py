"""Bodies in and out: msgspec JSON answers, `ErrorBody` answers, request decoding, and the
request body limit (413)."""

from __future__ import annotations

from typing import Any, Final, TypeVar

import msgspec
from fastapi import Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from libs.common.formats.decoding import decode_json
from libs.common.models.api import ErrorBody

T = TypeVar("T")

MiB: Final = 1024 * 1024
DEFAULT_BODY_LIMIT: Final = 8 * MiB
JSON: Final = "application/json"
YAML: Final = "application/yaml"
TEXT: Final = "text/plain"
BINARY: Final = "application/octet-stream"


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
