"""Which node an IP address belongs to, from the registry's KV `nodes`, kept in memory.

TFTP requests carry no MAC, only the client's address: the node is the one whose network
device has that `ipaddr`. The map follows the bucket through a watch, so a lookup never
waits on NATS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final

from libs.common.bus.kv import Bucket
from libs.common.models.boot_stage import UNKNOWN_NODE
from libs.common.models.node import Node

log = logging.getLogger("wolfpack.tftpd")

RETRY_DELAY: Final = 1.0


def addresses(node: Node) -> set[str]:
    """The node's IPv4 addresses (a "/prefix" some write after one is dropped)."""
    return {
        netdev.ipaddr.split("/")[0].strip()
        for netdev in node.network_devices.values()
        if netdev.ipaddr
    }


class NodeAddresses:
    def __init__(self, nodes: Bucket[Node]) -> None:
        self._nodes = nodes
        self._by_ip: dict[str, str] = {}
        self._by_node: dict[str, set[str]] = {}
        self._task: asyncio.Task[None] | None = None

    def name_for(self, ip: str) -> str:
        return self._by_ip.get(ip, UNKNOWN_NODE)

    async def start(self) -> None:
        """Load every node's addresses, then follow changes in the background."""
        ready = asyncio.Event()
        self._task = asyncio.create_task(self._follow(ready))
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait({self._task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if self._task.done():
            self._task.result()  # raises what stopped it

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _set(self, name: str, node: Node | None) -> None:
        for ip in self._by_node.pop(name, set()):
            if self._by_ip.get(ip) == name:
                del self._by_ip[ip]
        if node is not None:
            ips = addresses(node)
            self._by_node[name] = ips
            for ip in ips:
                self._by_ip[ip] = name

    async def _follow(self, ready: asyncio.Event) -> None:
        while True:
            try:
                async with contextlib.aclosing(self._nodes.watch(ready)) as changes:
                    async for name, node, _ in changes:
                        self._set(name, node)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # NATS away or the watch ended: the map stays as it was until it is back.
                log.warning("watching KV nodes failed (%s); retrying", exc or type(exc).__name__)
                await asyncio.sleep(RETRY_DELAY)
