"""Discovery, the registry's side: an unknown MAC is given to the discoverable node bootd chose,
whose flag is then cleared (as Warewulf does), through the same compare-and-set patch as
`PATCH /nodes/{name}` with If-Match: the node is written only at the revision bootd saw, and
its `updated` event follows the write. Domain logic only; services/registry/bus.py answers
the subject with it."""

from __future__ import annotations

import logging
from typing import Any, Final

from libs.common.errors import WolfpackError
from libs.common.models.discovery import DiscoveryAnswer, DiscoveryClaim
from libs.common.models.node import Node
from libs.common.nodes.macs import normalize_mac
from services.registry.registry import Registry

log = logging.getLogger("wolfpack.registry.discovery")

# The device that gets the MAC when the node names no primary network.
DEFAULT_DEVICE: Final = "default"


def claim_patch(node: Node, mac: str) -> dict[str, Any]:
    """The merge patch that gives `node` the MAC and clears its discoverable flag."""
    device = node.primary_network or DEFAULT_DEVICE
    return {"network_devices": {device: {"hwaddr": mac}}, "discoverable": None}


def _unavailable(node: Node | None, claim: DiscoveryClaim) -> str | None:
    """Why `node` (the registry's current view of claim.node) cannot take a MAC, or None."""
    if node is None:
        return f"no node named {claim.node!r}"
    if node.revision != claim.revision:
        return (
            f"node {claim.node} changed since bootd looked: revision {node.revision}, "
            f"not {claim.revision}"
        )
    if not node.discoverable:
        return f"node {claim.node} is not marked discoverable"
    return None


async def claim(registry: Registry, request: DiscoveryClaim) -> DiscoveryAnswer:
    """Give request.mac to request.node if that node is still discoverable at request.revision.
    A malformed MAC is Invalid; any other refusal is an answer saying what was refused."""
    mac = normalize_mac(request.mac, field="mac")
    owner = registry.mac_owner(mac)
    if owner is not None:
        return DiscoveryAnswer(refused="mac", error=f"MAC {mac} already belongs to node {owner}")
    why = _unavailable(registry.nodes.items.get(request.node), request)
    if why is not None:
        return DiscoveryAnswer(refused="node", error=why)
    current = registry.nodes.items[request.node]
    try:
        node = await registry.patch_node(
            request.node, claim_patch(current, mac), if_match=request.revision
        )
    except WolfpackError as err:
        # Changed or taken between the look above and the write, or its record refuses the
        # MAC: this node cannot have it, another may.
        return DiscoveryAnswer(refused="node", error=f"node {request.node}: {err}")
    log.info("discovery: MAC %s given to node %s", mac, node.name)
    return DiscoveryAnswer(node=node.name, revision=node.revision)
