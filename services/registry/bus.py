"""What the registry answers on NATS: subject → handler, nothing else."""

from __future__ import annotations

from typing import Final

from libs.common import subjects
from libs.common.bus.connection import Bus
from libs.common.bus.rpc import Responder
from libs.common.errors import WolfpackError
from libs.common.models.discovery import DiscoveryAnswer, DiscoveryClaim
from services.registry import discovery
from services.registry.registry import Registry

# Replicas share the subject: each claim is answered (and written) by one of them.
QUEUE: Final = "registry"


def _refused(err: WolfpackError) -> DiscoveryAnswer:
    return DiscoveryAnswer(refused="request", error=err.message, field=err.field)


async def serve(bus: Bus, registry: Registry) -> list[Responder[DiscoveryClaim, DiscoveryAnswer]]:
    async def on_claim(request: DiscoveryClaim) -> DiscoveryAnswer:
        return await discovery.claim(registry, request)

    claims = Responder(DiscoveryClaim, on_claim, _refused)
    await claims.start(bus, subjects.DISCOVERY, QUEUE)
    return [claims]
