"""The overlayd API: overlays, their files and builds."""

from __future__ import annotations

from typing import Final
from urllib.parse import quote

from libs.common.apiclient.client import ApiClient
from libs.common.apiclient.config import ENV_URLS, ApiConfig

# A build of every node answers when the wave is done: 10,000 nodes take a while.
TIMEOUT: Final = 600.0


class OverlaydClient(ApiClient):
    """`async with OverlaydClient(config) as api:` requests to the overlayd API."""

    service = "overlayd"
    url_env = ENV_URLS["overlayd"]

    def __init__(self, config: ApiConfig, *, timeout: float = TIMEOUT) -> None:
        super().__init__(config, timeout=timeout)


def file_path(name: str, path: str) -> str:
    """The API path of a file in an overlay (its path escaped segment by segment)."""
    return f"/overlays/{quote(name, safe='')}/files/{quote(path.lstrip('/'), safe='/')}"
