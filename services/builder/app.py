"""Builder service wiring: KV bucket, store and bus in, FastAPI app out."""

from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI

from libs.common import names, subjects
from libs.common.bus.announce import Announcement
from libs.common.bus.connection import Bus
from libs.common.bus.relay import KvChange, Relay, start_relays
from libs.common.http.app import create_app
from libs.common.http.auth import TokenAuth
from libs.common.models.image import ImageDeleted, ImageMeta
from libs.common.models.node import Node, Profile
from libs.common.security.accepted_tokens import TokenFile
from libs.common.settings import Settings
from libs.common.store.cas import ContentStore
from services.builder import api
from services.builder import bus as bus_handlers
from services.builder.images import Images
from services.builder.layout import Layout
from services.builder.ledger import StreamLedger
from services.builder.users import ImageUsers
from services.builder.webhook import RegistryWebhook

log = logging.getLogger("wolfpack.builder")


class BuilderService:
    def __init__(self, app: FastAPI, images: Images, bus: Bus) -> None:
        self.app = app
        self.images = images
        self._bus = bus
        self._consumers: list[bus_handlers.Stoppable] = []
        self._relays: list[Relay] = []

    async def start(self) -> None:
        # Before the first write: each image write's event goes out.
        self._relays = await start_relays(self._bus, {names.BUCKET_IMAGES: hand_made})
        await self.images.start()
        self._consumers = await bus_handlers.subscribe(self._bus, self.images)
        log.info("builder ready: images in %s", self.images.layout.images)

    async def stop(self) -> None:
        # Jobs first: a rebuild for a push, an accepted import or build, ends unacknowledged,
        # so it is handed over again.
        await self.images.stop()
        await asyncio.gather(*(consumer.stop() for consumer in self._consumers))
        for relay in self._relays:
            await relay.stop()


def hand_made(change: KvChange) -> Announcement | None:
    """An image deleted without the builder (`nats kv del`) still says so; a value written
    by hand says nothing (what was built is not known)."""
    if not change.deleted:
        return None
    event = ImageDeleted(name=change.key, revision=change.revision)
    return Announcement(subjects.image(change.key, "deleted"), event)


async def build(settings: Settings, bus: Bus) -> BuilderService:
    store = ContentStore(settings.cas_dir)
    images = Images(
        await bus.bucket(names.BUCKET_IMAGES, ImageMeta),
        bus,
        store,
        Layout(settings.data_dir),
        StreamLedger(bus),
    )
    auth = TokenAuth(TokenFile.ensure(settings.data_dir), public_read=settings.public_read)
    app = create_app("builder", title="wolfpack builder", version="1")
    users = ImageUsers(
        await bus.bucket(names.BUCKET_NODES, Node), await bus.bucket(names.BUCKET_PROFILES, Profile)
    )
    api.mount(app, images, users, RegistryWebhook(images, bus), auth)
    return BuilderService(app, images, bus)
