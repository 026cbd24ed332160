"""Reaching the builder: its URL and NATS server (flags aside: environment, then
DATA/endpoints.json, then the defaults), and a small client with wolfctl's typed errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, TypeVar

import msgspec

from libs.common import endpoints, names
from libs.common.errors import Invalid, Unauthorized, WolfpackError
from libs.wolfctl.client import ApiClient, Unreachable, error_from_response
from libs.wolfctl.config import ApiConfig, data_dir, resolve

if TYPE_CHECKING:
    import httpx

T = TypeVar("T")

ENV_BUILDER_URL: Final = "WOLFPACK_BUILDER_URL"
ENV_NATS: Final = "WOLFPACK_NATS"
DEFAULT_BUILDER_URL: Final = f"http://127.0.0.1:{names.PORTS['builder']}"
DEFAULT_NATS: Final = f"nats://127.0.0.1:{names.NATS_PORT}"


def _endpoints(env: Mapping[str, str]) -> endpoints.Endpoints | None:
    data = data_dir(env)
    try:
        return endpoints.read_endpoints(data)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise Invalid(f"cannot read {data / endpoints.FILE}: {e.strerror}") from None
    except msgspec.DecodeError as e:
        raise Invalid(f"{data / endpoints.FILE} is not what `wolfpack up` writes: {e}") from None


def builder_config(env: Mapping[str, str], token: str | None = None) -> ApiConfig:
    """The builder's URL and the API token (found as for the registry)."""
    found = _endpoints(env)
    url = (
        env.get(ENV_BUILDER_URL)
        or (found.services.get("builder") if found else None)
        or DEFAULT_BUILDER_URL
    )
    return ApiConfig(url=url, token=resolve(env, token=token).token)


def nats_url(env: Mapping[str, str]) -> str:
    found = _endpoints(env)
    return env.get(ENV_NATS) or (found.nats if found else None) or DEFAULT_NATS


class BuilderClient(ApiClient):
    """`async with BuilderClient(config) as api:` requests to the builder API."""

    async def request(self, method: str, path: str, body: Any = None) -> httpx.Response:
        import httpx

        content = msgspec.json.encode(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if content is not None else {}
        where = self.config.url
        try:
            resp = await self._http.request(method, path, content=content, headers=headers)
        except httpx.ConnectError:
            raise Unreachable(
                f"cannot reach the builder at {where}: is `wolfpack up` running? "
                f"(set ${ENV_BUILDER_URL} if it runs elsewhere)"
            ) from None
        except httpx.TimeoutException:
            raise Unreachable(f"the builder at {where} did not answer in time") from None
        except httpx.TransportError as e:
            raise Unreachable(f"talking to the builder at {where}: {e}") from None
        if resp.status_code >= 400:
            err = error_from_response(resp.status_code, resp.content)
            if isinstance(err, Unauthorized):
                err.message += " (the token comes from --token, $WOLFPACK_TOKEN or DATA/api.token)"
            raise err
        return resp

    async def get(self, path: str, type: type[T]) -> T:
        return _decode(await self.request("GET", path), type)

    async def post(self, path: str, body: Any, type: type[T]) -> T:
        return _decode(await self.request("POST", path, body), type)

    async def delete(self, path: str) -> None:
        await self.request("DELETE", path)


def _decode(resp: httpx.Response, type: type[T]) -> T:
    try:
        return msgspec.json.decode(resp.content, type=type)
    except msgspec.DecodeError as e:
        raise WolfpackError(f"unexpected answer from {resp.request.url.path}: {e}") from None
