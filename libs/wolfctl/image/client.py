"""Reaching the builder: its URL and NATS server (flags aside: environment, then
DATA/endpoints.json, then the defaults), and a small client with wolfctl's typed errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, TypeVar

import msgspec

from libs.common import endpoints, names
from libs.common.errors import Invalid
from libs.common.natsauth import nats_token
from libs.wolfctl.client import ApiClient
from libs.wolfctl.config import ApiConfig, data_dir, resolve

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
    # The token and the CA are found as for the registry.
    return msgspec.structs.replace(resolve(env, token=token), url=url)


def nats_url(env: Mapping[str, str]) -> str:
    found = _endpoints(env)
    return env.get(ENV_NATS) or (found.nats if found else None) or DEFAULT_NATS


def nats_token_for(env: Mapping[str, str], url: str) -> str | None:
    """The client token of `wolfpack up`'s nats-server, from the data folder (libs/common/
    natsauth.py); None for a server of the site's, or when it cannot be read."""
    return nats_token(url, data_dir(env))


class BuilderClient(ApiClient):
    """`async with BuilderClient(config) as api:` requests to the builder API."""

    service = "the builder"
    url_env = ENV_BUILDER_URL

    async def post(self, path: str, body: Any, type: type[T]) -> T:
        return await self.send("POST", path, body, type)
