"""Registry service wiring: buckets and bus in, FastAPI app out."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI

from libs.common import names
from libs.common.bus.connection import Bus
from libs.common.bus.relay import Relay, start_relays
from libs.common.bus.rpc import Responder
from libs.common.http.app import create_app
from libs.common.http.auth import TokenAuth
from libs.common.models.node import Node, Profile
from libs.common.security.accepted_tokens import TokenFile
from libs.common.settings import Settings
from services.registry import api
from services.registry import bus as registry_bus
from services.registry.collection import hand_made
from services.registry.registry import Registry

log = logging.getLogger("wolfpack.registry")


class RegistryService:
    def __init__(self, app: FastAPI, registry: Registry, bus: Bus) -> None:
        self.app = app
        self.registry = registry
        self._bus = bus
        self._responders: list[Responder[Any, Any]] = []
        self._relays: list[Relay] = []

    async def start(self) -> None:
        # Before the first write (the default profile): every write's event goes out.
        self._relays = await start_relays(
            self._bus,
            {names.BUCKET_NODES: hand_made("node"), names.BUCKET_PROFILES: hand_made("profile")},
        )
        await self.registry.start()
        # Answered only once the registry has loaded what it would check a request against.
        self._responders = await registry_bus.serve(self._bus, self.registry)
        log.info(
            "registry ready: %d profiles, %d nodes",
            len(self.registry.profiles.items),
            len(self.registry.nodes.items),
        )

    async def stop(self) -> None:
        for responder in self._responders:
            await responder.stop()
        await self.registry.stop()
        for relay in self._relays:
            await relay.stop()


async def build(settings: Settings, bus: Bus) -> RegistryService:
    registry = Registry(
        await bus.bucket(names.BUCKET_NODES, Node),
        await bus.bucket(names.BUCKET_PROFILES, Profile),
    )
    auth = TokenAuth(TokenFile.ensure(settings.data_dir), public_read=settings.public_read)
    app = create_app("registry", title="wolfpack registry", version="1")
    api.mount(app, registry, auth)
    return RegistryService(app, registry, bus)
