"""`wolfpack up --nats-route ...`: up's own nats-server joins two others in one cluster; its
services keep every stream and bucket three times, and a node written through the API is
read back from another member."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from libs.common import names
from libs.common.bus.cluster import ClusterMember
from libs.common.bus.server import NatsServer, free_port
from libs.common.models.node import Node
from libs.runtime.host import StartupFailed
from libs.runtime.up import check_store_fits
from tests.cli import run_cli
from tests.cluster.members import members, route
from tests.stack import connected_bus, free_port_offset, start_up
from tests.waiting import eventually


@pytest.fixture
async def two_members(tmp_path: Path) -> AsyncIterator[tuple[list[NatsServer], list[int]]]:
    """Two servers of a cluster whose third member is to be `wolfpack up`'s: the servers, and
    the route ports of all three (up's last)."""
    routes = [free_port() for _ in range(3)]
    servers = members(tmp_path, ["peer0", "peer1"], routes)
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


async def test_up_refuses_to_take_a_single_servers_store_into_a_cluster(tmp_path: Path) -> None:
    """What nats-server would do: start the cluster's streams empty beside the old ones, the
    install's nodes out of sight. up says so and starts nothing."""
    data = tmp_path / "data"
    server = NatsServer(data / "nats", port=free_port())
    await server.start()
    async with connected_bus(server.url) as bus:
        nodes = await bus.bucket(names.BUCKET_NODES, Node)
        await nodes.put("n1", Node(comment="from before"))
    await server.stop()
    done = await asyncio.to_thread(
        run_cli,
        "wolfpack",
        *("up", "--data", str(data), "--bind", "127.0.0.1"),
        *("--port-offset", str(free_port_offset())),
        *("--nats-route", "nats-route://127.0.0.1:1", "--nats-name", "a"),
        within=60,
    )
    assert done.returncode != 0
    assert "holds a single nats-server's streams" in done.stderr, done.stderr
    assert "docs/scale-out.md" in done.stderr
    assert not (data / "nats" / "server.conf").exists()


def test_a_members_store_is_not_started_alone(tmp_path: Path) -> None:
    store = tmp_path / "nats"
    store.mkdir()
    (store / "server.conf").write_text("server_name: a\n")
    with pytest.raises(StartupFailed, match="same --nats-route"):
        check_store_fits(store, None)
    member = ClusterMember(server_name="a", listen="127.0.0.1:1", routes=("nats-route://b:1",))
    check_store_fits(store, member)  # a member again: fine
    check_store_fits(tmp_path / "empty", member)  # nothing to leave behind: fine
