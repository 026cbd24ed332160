"""How many copies of each stream and bucket: JetStream's R3 on a cluster of three servers or
more, one copy otherwise (a single server, or a cluster too small to survive a loss anyway)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

# Copies kept on a cluster: any one server may die and the other two still elect a leader.
CLUSTER_REPLICAS: Final = 3


def replicas_for(server_info: Mapping[str, Any]) -> int:
    """From the INFO a server greets a client with: `cluster` names its cluster, and
    `connect_urls` lists the client URLs of every server the cluster knows."""
    if not server_info.get("cluster"):
        return 1
    known = server_info.get("connect_urls") or []
    return CLUSTER_REPLICAS if len(known) >= CLUSTER_REPLICAS else 1
