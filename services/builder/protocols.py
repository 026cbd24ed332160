"""The narrow interfaces the builder's domain needs from NATS: KV `images` and the ledger of
accepted requests (the stream). Its publisher is libs.common.bus.publisher.Publisher."""

from __future__ import annotations

from typing import Protocol

from libs.common.bus.announce import AnnouncingWrites
from libs.common.models.image import ImageJob, ImageMeta, ImageRequested


class ImageBucket(AnnouncingWrites[ImageMeta], Protocol):
    """The part of libs.common.bus.kv.Bucket[ImageMeta] the builder uses."""

    async def get_or_none(self, key: str) -> ImageMeta | None: ...
    async def items(self) -> dict[str, ImageMeta]: ...


class RequestLedger(Protocol):
    """Where accepted requests are recorded durably (ledger.StreamLedger)."""

    async def record(self, request: ImageRequested) -> None: ...
    async def last_request(self, name: str) -> ImageRequested | None: ...
    async def ending(self, request: ImageRequested) -> ImageJob | None: ...
