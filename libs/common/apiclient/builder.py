"""The builder API: image imports, builds and their jobs."""

from __future__ import annotations

from typing import Any, TypeVar

from libs.common.apiclient.client import ApiClient
from libs.common.apiclient.config import ENV_URLS

T = TypeVar("T")


class BuilderClient(ApiClient):
    """`async with BuilderClient(config) as api:` requests to the builder API."""

    service = "the builder"
    url_env = ENV_URLS["builder"]

    async def post(self, path: str, body: Any, type: type[T]) -> T:
        return await self.send("POST", path, body, type)
