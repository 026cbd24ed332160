"""Reaching overlayd: its URL (`WOLFPACK_OVERLAYD_URL`, else DATA/endpoints.json, else the
default port on localhost), the API token found as for the registry, and a small client with
wolfctl's typed errors."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Final

import click
import msgspec

from libs.common import endpoints, names
from libs.common.errors import Invalid
from libs.wolfctl.client import ApiClient
from libs.wolfctl.config import ApiConfig, data_dir, resolve
from libs.wolfctl.context import globals_of

ENV_OVERLAYD_URL: Final = "WOLFPACK_OVERLAYD_URL"
DEFAULT_OVERLAYD_URL: Final = f"http://127.0.0.1:{names.PORTS['overlayd']}"
# A build of every node answers when the wave is done: 10,000 nodes take a while.
TIMEOUT: Final = 600.0


def overlayd_config(env: Mapping[str, str], token: str | None = None) -> ApiConfig:
    url = env.get(ENV_OVERLAYD_URL) or _from_endpoints(data_dir(env)) or DEFAULT_OVERLAYD_URL
    # The token and the CA are found as for the registry.
    return msgspec.structs.replace(resolve(env, token=token), url=url)


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

    service = "overlayd"
    url_env = ENV_OVERLAYD_URL

    def __init__(self, config: ApiConfig, *, timeout: float = TIMEOUT) -> None:
        super().__init__(config, timeout=timeout)


def file_path(name: str, path: str) -> str:
    """The API path of a file in an overlay (its path escaped segment by segment)."""
    from urllib.parse import quote

    return f"/overlays/{quote(name, safe='')}/files/{quote(path.lstrip('/'), safe='/')}"
