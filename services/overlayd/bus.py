"""What overlayd reacts to on NATS: subject → handler, nothing else.

Each handler makes sure the mirrored state holds what the event names, then notes the change;
the wave that renders it comes later (incremental.py). Acknowledging before that wave is safe: a
restart renders every node first, so an event lost with a crash changes nothing. The KV
watches notice the same changes (cluster.py): an event is the fast, ordered path, the watch
the one that holds when a writer died between storing and publishing.
"""

from __future__ import annotations

from typing import Any, Final

from libs.common import subjects
from libs.common.bus.connection import Bus
from libs.common.bus.consumer import Consumer
from libs.common.models.events import ChangeEvent
from libs.common.models.image import ImageBuilt, ImageDeleted
from libs.common.models.overlay import OverlayEvent
from services.overlayd.cluster import ClusterView
from services.overlayd.engine import Change
from services.overlayd.incremental import Waves

REGISTRY: Final = tuple(
    subjects.every(kind, verb) for kind in ("node", "profile") for verb in ("updated", "deleted")
)
IMAGE_BUILT: Final = subjects.every("image", "built")
IMAGE_DELETED: Final = subjects.every("image", "deleted")
OVERLAYS: Final = (subjects.every("overlay", "updated"), subjects.every("overlay", "deleted"))

# Durable: what was published while overlayd was down is handled when it is back.
DURABLES: Final = {
    "registry": "overlayd-registry",
    "image-built": "overlayd-image-built",
    "image-deleted": "overlayd-image-deleted",
    "overlays": "overlayd-overlays",
}
BATCH: Final = 256


async def subscribe(bus: Bus, view: ClusterView, waves: Waves) -> list[Consumer[Any]]:
    async def on_registry(subject: str, event: ChangeEvent) -> None:
        mirror = view.nodes if event.kind == "node" else view.profiles
        await mirror.caught_up(event.name, event.revision, deleted=event.action == "deleted")
        waves.notice(Change(kind=event.kind, name=event.name))

    async def on_image_built(subject: str, event: ImageBuilt) -> None:
        await view.images.caught_up(event.name, event.revision)
        waves.notice(Change(kind="image", name=event.name))

    async def on_image_deleted(subject: str, event: ImageDeleted) -> None:
        await view.images.caught_up(event.name, event.revision, deleted=True)
        waves.notice(Change(kind="image", name=event.name))

    async def on_overlay(subject: str, event: OverlayEvent) -> None:
        waves.notice(Change(kind="overlay", name=event.name))

    return [
        await bus.consume(REGISTRY, DURABLES["registry"], ChangeEvent, on_registry, batch=BATCH),
        await bus.consume(IMAGE_BUILT, DURABLES["image-built"], ImageBuilt, on_image_built),
        await bus.consume(IMAGE_DELETED, DURABLES["image-deleted"], ImageDeleted, on_image_deleted),
        await bus.consume(OVERLAYS, DURABLES["overlays"], OverlayEvent, on_overlay),
    ]
