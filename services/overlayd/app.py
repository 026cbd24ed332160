"""overlayd wiring: buckets, store and bus in; the renderer, its waves and the API out."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

from fastapi import FastAPI

from libs.common import names
from libs.common.bus.connection import Bus
from libs.common.bus.consumer import Consumer
from libs.common.bus.relay import Relay, start_relays
from libs.common.http.app import create_app
from libs.common.http.auth import TokenAuth
from libs.common.http.bodies import MiB
from libs.common.models.image import ImageMeta
from libs.common.models.node import Node, Profile
from libs.common.models.overlay import BootManifest, OverlayMeta
from libs.common.security.accepted_tokens import TokenFile
from libs.common.settings import Settings
from libs.common.site.config import include_host_paths, load_config, template_settings
from libs.common.site.hostconfig import HostConfig, HostWriter
from libs.common.store.cas import ContentStore
from services.overlayd import api, site_overlays
from services.overlayd import bus as bus_handlers
from services.overlayd import manifests as manifests_module
from services.overlayd.catalog import Catalog
from services.overlayd.cluster import ClusterView
from services.overlayd.engine import OverlayRenderer, OverlaySources, ShippedOverlays
from services.overlayd.engine.keys import load_host_keys
from services.overlayd.front import OverlaydFront
from services.overlayd.incremental import Waves
from services.overlayd.manifests import Manifests
from services.overlayd.render_step import Rendering
from services.overlayd.site_entries import MAX_IMPORT_BYTES
from services.overlayd.site_overlays import OverlayStorage

log = logging.getLogger("wolfpack.overlayd")

# An import's tar archive may be as big as an overlay may be, plus its headers.
BODY_LIMIT: Final = MAX_IMPORT_BYTES + 16 * MiB


class OverlaydService:
    def __init__(
        self, app: FastAPI, view: ClusterView, manifests: Manifests, waves: Waves, bus: Bus
    ) -> None:
        self.app = app
        self.view = view
        self.manifests = manifests
        self.waves = waves
        self._bus = bus
        self._consumers: list[Consumer[Any]] = []
        self._relays: list[Relay] = []

    async def start(self) -> None:
        # Before the first write: each overlay and manifest write's event goes out.
        self._relays = await start_relays(
            self._bus,
            {
                names.BUCKET_OVERLAYS: site_overlays.hand_made,
                names.BUCKET_BOOT: manifests_module.hand_made,
            },
        )
        await self.view.start()
        # From here on a change seen by the watches starts a wave; what was there before is
        # in the start-up render.
        self.view.on_change = self.waves.notice
        await self.manifests.load()
        # The start-up render runs in the background (10,000 nodes take a while); events
        # that come meanwhile wait for it.
        await self.waves.start()
        self._consumers = await bus_handlers.subscribe(self._bus, self.view, self.waves)
        log.info(
            "overlayd ready: %d nodes, %d profiles, %d manifests; rendering every node",
            len(self.view.nodes.items),
            len(self.view.profiles.items),
            len(self.manifests.current),
        )

    async def stop(self) -> None:
        await asyncio.gather(*(consumer.stop() for consumer in self._consumers))
        await self.waves.stop()
        await self.view.stop()
        for relay in self._relays:
            await relay.stop()


async def build(settings: Settings, bus: Bus) -> OverlaydService:
    config = load_config(settings.data_dir)
    template = template_settings(config, settings)
    if settings.tls and not template.ca_pem:
        log.warning(
            "bootd's certificate does not name %s, the address nodes reach it at: node agents "
            "fetch their runtime overlay over plain HTTP (give every service --tls-name %s)",
            template.ip,
            template.ip,
        )
    store = ContentStore(settings.cas_dir)
    shipped = ShippedOverlays()
    storage = OverlayStorage(
        await bus.bucket(names.BUCKET_OVERLAYS, OverlayMeta), store, shipped
    )
    renderer = OverlayRenderer(
        OverlaySources(shipped, storage, store),
        template,
        await load_host_keys(settings.data_dir),
        store,
        data_dir=settings.data_dir,
        host_roots=include_host_paths(config),
    )
    view = ClusterView(
        await bus.bucket(names.BUCKET_NODES, Node),
        await bus.bucket(names.BUCKET_PROFILES, Profile),
        await bus.bucket(names.BUCKET_IMAGES, ImageMeta),
    )
    manifests = Manifests(await bus.bucket(names.BUCKET_BOOT, BootManifest))
    hosts = HostWriter(HostConfig(settings.data_dir, template, config))
    waves = Waves(view, Rendering(view, renderer, manifests, bus), hosts)
    auth = TokenAuth(TokenFile.ensure(settings.data_dir), public_read=settings.public_read)
    app = create_app("overlayd", title="wolfpack overlayd", version="1", body_limit=BODY_LIMIT)
    catalog = Catalog(storage, renderer, view, settings.data_dir)
    api.mount(app, OverlaydFront(catalog, view, waves, manifests), auth)
    return OverlaydService(app, view, manifests, waves, bus)
