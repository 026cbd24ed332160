"""The nats-server config of one server of a wolfpack NATS cluster: its name, the cluster's
name, where it listens for routes, the routes to its peers, and the client-auth file (up's
token) it includes. Distinct server names are what JetStream's elections count."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

import msgspec

from libs.common.errors import Invalid

# up's member config, in DATA/nats beside the client token's auth.conf that it includes.
CLUSTER_CONFIG: Final = "server.conf"


class ClusterMember(msgspec.Struct, frozen=True, kw_only=True):
    server_name: str
    cluster: str = "wolfpack"
    # host:port this server takes routes on.
    listen: str
    # nats-route://host:port of every other server.
    routes: tuple[str, ...]


def config_text(member: ClusterMember, include: Path | None = None) -> str:
    if not member.server_name or not member.routes:
        raise Invalid("a cluster member needs a server name and routes to its peers")
    routes = ", ".join(json.dumps(r) for r in member.routes)
    lines = [
        f"server_name: {json.dumps(member.server_name)}",
        "cluster {",
        f"  name: {json.dumps(member.cluster)}",
        f"  listen: {json.dumps(member.listen)}",
        f"  routes: [{routes}]",
        "}",
    ]
    if include is not None:
        # nats-server takes one -c file: the client token's comes in by include.
        lines.append(f"include {json.dumps(include.name)}")
    return "\n".join(lines) + "\n"


def write_config(path: Path, member: ClusterMember, include: Path | None = None) -> Path:
    """The member's config in `path` (an included file must sit in the same folder)."""
    if include is not None and include.parent != path.parent:
        raise Invalid(f"{include} must be in {path.parent} to be included")
    path.write_text(config_text(member, include))
    path.chmod(0o600)
    return path
