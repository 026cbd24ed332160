"""Registry service wiring: buckets and bus in, FastAPI app out."""

from __future__ import annotations

import logging

from fastapi import FastAPI

from libs.common import names
from libs.common.bus.connection import Bus
from libs.common.http.app import create_app
from libs.common.http.auth import TokenAuth
from libs.common.models.node import Node, Profile
from libs.common.security.accepted_tokens import TokenFile
from libs.common.settings import Settings
from services.registry import api
from services.registry.registry import Registry

log = logging.getLogger("wolfpack.registry")


class RegistryService:
    def __init__(self, app: FastAPI, registry: Registry) -> None:
        self.app = app
        self.registry = registry

    async def start(self) -> None:
        await self.registry.start()
        log.info(
            "registry ready: %d profiles, %d nodes",
            len(self.registry.profiles.items),
            len(self.registry.nodes.items),
        )

    async def stop(self) -> None:
        await self.registry.stop()


async def build(settings: Settings, bus: Bus) -> RegistryService:
    registry = Registry(
        await bus.bucket(names.BUCKET_NODES, Node),
        await bus.bucket(names.BUCKET_PROFILES, Profile),
        bus,
    )
    auth = TokenAuth(TokenFile.ensure(settings.data_dir), public_read=settings.public_read)
    app = create_app("registry", title="wolfpack registry", version="1")
    api.mount(app, registry, auth)
    return RegistryService(app, registry)
