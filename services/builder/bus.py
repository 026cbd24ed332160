"""What the builder reacts to on NATS: subject → handler, nothing else."""

from __future__ import annotations

from typing import Any, Final

from libs.common.bus import Bus, Consumer
from libs.common.models.image import ImagePushed
from services.builder.images import Images

PUSHED: Final = "wolfpack.image.*.pushed"
# Durable: a push published while the builder was down is handled when it is back.
PUSHED_DURABLE: Final = "builder-pushed"


async def subscribe(bus: Bus, images: Images) -> list[Consumer[Any]]:
    async def on_pushed(subject: str, event: ImagePushed) -> None:
        await images.on_pushed(event)

    return [await bus.consume(PUSHED, PUSHED_DURABLE, ImagePushed, on_pushed, batch=1)]
