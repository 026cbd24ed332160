"""Three nats-servers on loopback joined in one cluster: real JetStream clustering (R3
streams, elections), each server its own process, store and route port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from libs.common.bus.server import NatsServer, free_port
from tests.cluster.members import members


class Cluster:
    def __init__(self, servers: list[NatsServer]) -> None:
        self.servers = servers

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.servers]


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    servers = members(tmp_path, ["n0", "n1", "n2"], [free_port() for _ in range(3)])
    for server in servers:
        await server.start()
    try:
        yield Cluster(servers)
    finally:
        for server in servers:
            await server.stop()
