"""Which node an IP address belongs to, from the registry's KV `nodes`, kept in memory.

TFTP requests carry no MAC, only the client's address: the node is the one whose network
device has that `ipaddr`. The map follows the bucket through a mirror, so a lookup never
waits on NATS.
"""

from __future__ import annotations

from libs.common.bus.mirror import Mirror, WatchedBucket
from libs.common.models.boot_stage import UNKNOWN_NODE
from libs.common.models.node import Node


def addresses(node: Node) -> frozenset[str]:
    """The node's IPv4 addresses (a "/prefix" some write after one is dropped)."""
    return frozenset(
        netdev.ipaddr.split("/")[0].strip()
        for netdev in node.network_devices.values()
        if netdev.ipaddr
    )


class NodeAddresses:
    def __init__(self, nodes: WatchedBucket[Node]) -> None:
        self._by_ip: dict[str, str] = {}
        # Only each node's addresses are kept: a site may have 100,000 nodes.
        self._nodes = Mirror(nodes, self._changed, keep=lambda name, node: addresses(node))

    def name_for(self, ip: str) -> str:
        return self._by_ip.get(ip, UNKNOWN_NODE)

    async def start(self) -> None:
        """Load every node's addresses, then follow changes in the background."""
        await self._nodes.start()

    async def stop(self) -> None:
        await self._nodes.stop()

    def _changed(self, name: str, old: frozenset[str] | None, new: frozenset[str] | None) -> None:
        for ip in old or ():
            if self._by_ip.get(ip) == name:
                del self._by_ip[ip]
        for ip in new or ():
            self._by_ip[ip] = name
