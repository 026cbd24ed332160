"""nats-servers configured as members of one cluster on loopback (not started)."""

from __future__ import annotations

from pathlib import Path

from libs.common.bus.cluster import ClusterMember, write_config
from libs.common.bus.server import NatsServer, free_port


def route(port: int) -> str:
    return f"nats-route://127.0.0.1:{port}"


def members(folder: Path, names: list[str], routes: list[int]) -> list[NatsServer]:
    """A server for each of `names`, the i-th taking routes on `routes[i]` and routing to
    every other port of `routes` (which may hold more: members started elsewhere)."""
    servers = []
    for i, name in enumerate(names):
        home = folder / f"nats{i}"
        home.mkdir()
        member = ClusterMember(
            server_name=name,
            listen=f"127.0.0.1:{routes[i]}",
            routes=tuple(route(p) for j, p in enumerate(routes) if j != i),
        )
        config = write_config(home / "server.conf", member)
        servers.append(NatsServer(home, port=free_port(), config=config))
    return servers
