"""Three nats-servers on loopback joined in one cluster: real JetStream clustering (R3
streams, elections), each server its own process, store and route port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from libs.common.bus.cluster import ClusterMember, write_config
from libs.common.bus.server import NatsServer, free_port


class Cluster:
    def __init__(self, servers: list[NatsServer]) -> None:
        self.servers = servers

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.servers]


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    routes = [free_port() for _ in range(3)]
    servers = []
    for i in range(3):
        folder = tmp_path / f"nats{i}"
        folder.mkdir()
        member = ClusterMember(
            server_name=f"n{i}",
            listen=f"127.0.0.1:{routes[i]}",
            routes=tuple(f"nats-route://127.0.0.1:{p}" for j, p in enumerate(routes) if j != i),
        )
        config = write_config(folder / "server.conf", member)
        servers.append(NatsServer(folder, port=free_port(), config=config))
    for server in servers:
        await server.start()
    try:
        yield Cluster(servers)
    finally:
        for server in servers:
            await server.stop()
