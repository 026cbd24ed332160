"""`wolfpack up --nats-route ...`: up's own nats-server joins two others in one cluster; its
services keep every stream and bucket three times, and a node written through the API is
read back from another member."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from libs.common import names
from libs.common.bus.cluster import ClusterMember, write_config
from libs.common.bus.server import NatsServer, free_port
from libs.common.models.node import Node
from tests.stack import connected_bus, start_up
from tests.waiting import eventually


def route(port: int) -> str:
    return f"nats-route://127.0.0.1:{port}"


@pytest.fixture
async def two_members(tmp_path: Path) -> AsyncIterator[tuple[list[NatsServer], list[int]]]:
    """Two servers of a cluster whose third member is to be `wolfpack up`'s: the servers, and
    the route ports of all three (up's last)."""
    routes = [free_port() for _ in range(3)]
    servers = []
    for i in range(2):
        folder = tmp_path / f"nats{i}"
        folder.mkdir()
        member = ClusterMember(
            server_name=f"peer{i}",
            listen=f"127.0.0.1:{routes[i]}",
            routes=tuple(route(p) for j, p in enumerate(routes) if j != i),
        )
        config = write_config(folder / "server.conf", member)
        servers.append(NatsServer(folder, port=free_port(), config=config))
    for server in servers:
        await server.start()
    try:
        yield servers, routes
    finally:
        for server in servers:
            await server.stop()


async def test_up_joins_a_cluster_and_keeps_everything_three_times(
    tmp_path: Path, two_members: tuple[list[NatsServer], list[int]]
) -> None:
    peers, routes = two_members
    flags = ["--nats-name", "up0", "--nats-cluster-listen", f"127.0.0.1:{routes[2]}"]
    for port in routes[:2]:
        flags += ["--nats-route", route(port)]
    with start_up(tmp_path / "data", None, *flags) as up:
        config = (up.data / "nats" / "server.conf").read_text()
        assert 'server_name: "up0"' in config and 'include "auth.conf"' in config
        async with connected_bus(up.nats_url) as bus:
            for stream in (names.STREAM, *(f"KV_{b}" for b in names.BUCKETS)):
                info = await bus.js.stream_info(stream)
                assert info.config.num_replicas == 3, stream
        headers = {"Authorization": f"Bearer {up.token}"}
        async with httpx.AsyncClient(base_url=up.registry_url, headers=headers) as api:
            r = await api.put("/api/v1/nodes/n1", json={"comment": "rack 3"})
            assert r.status_code == 201, r.text
        # Another member has it: the bucket is replicated, not up's alone.
        async with connected_bus(peers[1].url) as other:
            nodes = await other.bucket(names.BUCKET_NODES, Node)
            found = await eventually(
                lambda: nodes.get_or_none("n1"), "n1 on another member", within=10
            )
            assert found.comment == "rack 3"
