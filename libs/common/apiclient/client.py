"""A small async client of the registry API: requests out, typed errors back.

Every non-2xx answer becomes one of libs.common.errors (message and field from the ErrorBody);
a registry that cannot be reached becomes one clear sentence instead of a traceback.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from http import HTTPStatus
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar

import msgspec

from libs.common.apiclient.config import ApiConfig
from libs.common.errors import Conflict, Invalid, NotFound, Unauthorized, WolfpackError
from libs.common.models.api import ErrorBody

if TYPE_CHECKING:
    import httpx

T = TypeVar("T")

_BY_STATUS: dict[int, type[WolfpackError]] = {
    400: Invalid,
    401: Unauthorized,
    403: Unauthorized,
    404: NotFound,
    409: Conflict,
    412: Conflict,
    422: Invalid,
}


class Unreachable(WolfpackError):
    """The registry did not answer at all (refused, timed out, connection broken)."""


def _detail_message(detail: Any) -> str:
    """FastAPI's own validation answers ({"detail": [...]}) read as one line too."""
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                parts.append(f"{loc}: {item.get('msg', '')}" if loc else str(item.get("msg", "")))
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return str(detail)


def error_from_response(status: int, body: bytes) -> WolfpackError:
    """The typed error a registry answer stands for (status >= 400)."""
    cls = _BY_STATUS.get(status, WolfpackError)
    try:
        err = msgspec.json.decode(body, type=ErrorBody)
        return cls(err.error, field=err.field)
    except msgspec.DecodeError:
        pass
    try:
        doc = msgspec.json.decode(body)
    except msgspec.DecodeError:
        doc = None
    if isinstance(doc, dict) and "detail" in doc:
        return cls(_detail_message(doc["detail"]))
    text = " ".join(body.decode(errors="replace").split())  # one line, whatever came
    if not text or text.startswith("<"):  # an HTML error page says nothing the status doesn't
        try:
            text = HTTPStatus(status).phrase
        except ValueError:
            text = ""
    return cls(f"the registry answered {status}" + (f": {text[:200]}" if text else ""))


def _tls_failure(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error under a connection failure (an untrusted certificate, say), if any."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


class ApiClient:
    """`async with Client(config) as api:` one connection pool for one command, to any of the
    wolfpack APIs (registry, builder, overlayd): bearer token and JSON accept set once."""

    # How messages name the service, and the variable that points wolfctl elsewhere.
    service: ClassVar[str] = "the API"
    url_env: ClassVar[str | None] = None

    def __init__(self, config: ApiConfig, *, timeout: float = 60.0) -> None:
        # Imported here: httpx takes ~0.1 s to import, which `wolfctl --help` need not pay.
        import httpx

        self.config = config
        headers = {"Accept": "application/json"}
        if config.token:
            headers["Authorization"] = f"Bearer {config.token}"
        self._http = httpx.AsyncClient(
            base_url=config.base_url,
            headers=headers,
            timeout=timeout,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
            verify=config.verify(),
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content: bytes | None = None,
        content_type: str = "application/octet-stream",
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request (`body` as JSON, or raw `content`); raise the typed error for a
        4xx/5xx or a service that cannot be reached."""
        import httpx

        send_headers = dict(headers or {})
        if body is not None:
            content, send_headers["Content-Type"] = msgspec.json.encode(body), "application/json"
        elif content is not None:
            send_headers["Content-Type"] = content_type
        where = f"{self.service} at {self.config.url}"
        try:
            resp = await self._http.request(
                method, path, content=content, params=params, headers=send_headers
            )
        except httpx.ConnectError as e:
            tls = _tls_failure(e)
            if tls is not None:
                raise Unreachable(
                    f"TLS with {where} failed: {tls} (the CA to trust comes from $WOLFPACK_CA, "
                    "else DATA/endpoints.json)"
                ) from None
            elsewhere = f" (set ${self.url_env} if it runs elsewhere)" if self.url_env else ""
            raise Unreachable(
                f"cannot reach {where}: is `wolfpack up` running?{elsewhere}"
            ) from None
        except httpx.TimeoutException:
            raise Unreachable(f"{where} did not answer in time") from None
        except httpx.TransportError as e:
            raise Unreachable(f"talking to {where}: {e}") from None
        if resp.status_code >= 400:
            err = error_from_response(resp.status_code, resp.content)
            if isinstance(err, Unauthorized):
                err.message += (
                    " (the token comes from --token, $WOLFPACK_TOKEN or DATA/api.token)"
                    if self.config.token
                    else " (no API token: pass --token or set $WOLFPACK_TOKEN or $WOLFPACK_DATA)"
                )
            raise err
        return resp

    async def get(self, path: str, type: type[T], params: Mapping[str, str] | None = None) -> T:
        return decode(await self.request("GET", path, params=params), type)

    async def send(
        self,
        method: str,
        path: str,
        body: Any,
        type: type[T],
        headers: Mapping[str, str] | None = None,
    ) -> T:
        """Encode `body` as JSON, send it, decode the answer as `type`."""
        content = msgspec.json.encode(body)
        resp = await self.request(
            method, path, content=content, content_type="application/json", headers=headers
        )
        return decode(resp, type)

    async def delete(self, path: str) -> None:
        await self.request("DELETE", path)


class Registry(ApiClient):
    """The registry API."""

    service = "the registry"

    async def send_text(
        self, method: str, path: str, text: str, content_type: str, type: type[T]
    ) -> T:
        """Send a text body (a nodes.conf), decode the JSON answer as `type`."""
        resp = await self.request(method, path, content=text.encode(), content_type=content_type)
        return decode(resp, type)


def decode(resp: httpx.Response, type: type[T]) -> T:
    """The JSON answer as `type`; an answer of another shape is one clear error."""
    try:
        return msgspec.json.decode(resp.content, type=type)
    except msgspec.DecodeError as e:
        raise WolfpackError(f"unexpected answer from {resp.request.url.path}: {e}") from None
