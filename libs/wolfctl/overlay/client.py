"""Reaching overlayd: its URL (`WOLFPACK_OVERLAYD_URL`, else DATA/endpoints.json, else the
default port on localhost), the API token found as for the registry, and a small client with
wolfctl's typed errors."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, TypeVar

import click
import msgspec

from libs.common import endpoints, names
from libs.common.errors import Invalid, Unauthorized, WolfpackError
from libs.wolfctl.client import ApiClient, Unreachable, error_from_response
from libs.wolfctl.config import ApiConfig, data_dir, resolve
from libs.wolfctl.context import globals_of

if TYPE_CHECKING:
    import httpx

T = TypeVar("T")

ENV_OVERLAYD_URL: Final = "WOLFPACK_OVERLAYD_URL"
DEFAULT_OVERLAYD_URL: Final = f"http://127.0.0.1:{names.PORTS['overlayd']}"
# A build of every node answers when the wave is done: 10,000 nodes take a while.
TIMEOUT: Final = 600.0


def overlayd_config(env: Mapping[str, str], token: str | None = None) -> ApiConfig:
    url = env.get(ENV_OVERLAYD_URL) or _from_endpoints(data_dir(env)) or DEFAULT_OVERLAYD_URL
    return ApiConfig(url=url, token=resolve(env, token=token).token)


def _from_endpoints(data: Any) -> str | None:
    try:
        return endpoints.read_endpoints(data).services.get("overlayd")
    except FileNotFoundError:
        return None
    except OSError as e:
        raise Invalid(f"cannot read {data / endpoints.FILE}: {e.strerror}") from None
    except msgspec.DecodeError as e:
        raise Invalid(f"{data / endpoints.FILE} is not what `wolfpack up` writes: {e}") from None


def client(ctx: click.Context) -> OverlaydClient:
    return OverlaydClient(overlayd_config(os.environ, token=globals_of(ctx).token))


class OverlaydClient(ApiClient):
    """`async with OverlaydClient(config) as api:` requests to the overlayd API."""

    def __init__(self, config: ApiConfig, *, timeout: float = TIMEOUT) -> None:
        super().__init__(config, timeout=timeout)

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
        import httpx

        send = dict(headers or {})
        if body is not None:
            content, send["Content-Type"] = msgspec.json.encode(body), "application/json"
        elif content is not None:
            send["Content-Type"] = content_type
        where = self.config.url
        try:
            resp = await self._http.request(
                method, path, content=content, params=params, headers=send
            )
        except httpx.ConnectError:
            raise Unreachable(
                f"cannot reach overlayd at {where}: is `wolfpack up` running? "
                f"(set ${ENV_OVERLAYD_URL} if it runs elsewhere)"
            ) from None
        except httpx.TimeoutException:
            raise Unreachable(f"overlayd at {where} did not answer in time") from None
        except httpx.TransportError as e:
            raise Unreachable(f"talking to overlayd at {where}: {e}") from None
        if resp.status_code >= 400:
            err = error_from_response(resp.status_code, resp.content)
            if isinstance(err, Unauthorized):
                err.message += " (the token comes from --token, $WOLFPACK_TOKEN or DATA/api.token)"
            raise err
        return resp

    async def get(self, path: str, type: type[T], params: Mapping[str, str] | None = None) -> T:
        return decode(await self.request("GET", path, params=params), type)

    async def send(self, method: str, path: str, body: Any, type: type[T]) -> T:
        return decode(await self.request(method, path, body=body), type)


def decode(resp: httpx.Response, type: type[T]) -> T:
    try:
        return msgspec.json.decode(resp.content, type=type)
    except msgspec.DecodeError as e:
        raise WolfpackError(f"unexpected answer from {resp.request.url.path}: {e}") from None


def file_path(name: str, path: str) -> str:
    """The API path of a file in an overlay (its path escaped segment by segment)."""
    from urllib.parse import quote

    return f"/overlays/{quote(name, safe='')}/files/{quote(path.lstrip('/'), safe='/')}"
