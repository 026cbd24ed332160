"""The narrow interfaces the builder's domain needs from NATS: KV `images`, a publisher and
the ledger of accepted requests (the stream)."""

from __future__ import annotations

from typing import Protocol

import msgspec

from libs.common.models.image import ImageJob, ImageMeta, ImageRequested


class ImageBucket(Protocol):
    """The part of libs.common.bus.kv.Bucket[ImageMeta] the builder uses."""

    async def get_or_none(self, key: str) -> ImageMeta | None: ...
    async def create(self, key: str, value: ImageMeta) -> int: ...
    async def update(self, key: str, value: ImageMeta, revision: int) -> int: ...
    async def delete(self, key: str, revision: int | None = None) -> None: ...
    async def items(self) -> dict[str, ImageMeta]: ...


class Publisher(Protocol):
    async def publish(
        self, subject: str, event: msgspec.Struct, *, msg_id: str | None = None
    ) -> int: ...


class RequestLedger(Protocol):
    """Where accepted requests are recorded durably (ledger.StreamLedger)."""

    async def record(self, request: ImageRequested) -> None: ...
    async def last_request(self, name: str) -> ImageRequested | None: ...
    async def ending(self, request: ImageRequested) -> ImageJob | None: ...
