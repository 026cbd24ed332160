"""The in-memory map bootd answers from: boot manifests by node and by MAC, and the nodes that
may be discovered. Fed by watching KV `boot` and `nodes`, so a request never waits on NATS."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from libs.common.kv import Bucket
from libs.common.models.node import Node
from libs.common.models.overlay import BootManifest
from services.bootd.macs import maybe_mac

log = logging.getLogger("wolfpack.bootd.index")


class ManifestIndex:
    """Plain dicts replaced key by key as the watchers see changes (one event loop: no locks)."""

    def __init__(self) -> None:
        self.by_node: dict[str, BootManifest] = {}
        self.by_mac: dict[str, str] = {}
        # Discoverable nodes (their own flag set) with the revision to PATCH against.
        self.discoverable: dict[str, Node] = {}

    def manifest_for_mac(self, mac: str) -> BootManifest | None:
        node = self.by_mac.get(mac)
        return self.by_node.get(node) if node is not None else None

    def set_manifest(self, name: str, manifest: BootManifest | None) -> None:
        old = self.by_node.pop(name, None)
        if old is not None:
            for mac in old.hwaddrs:
                found = maybe_mac(mac)
                if found is not None and self.by_mac.get(found) == name:
                    del self.by_mac[found]
        if manifest is None:
            return
        self.by_node[name] = manifest
        for mac in manifest.hwaddrs:
            found = maybe_mac(mac)
            if found is not None:
                self.by_mac[found] = name

    def set_node(self, name: str, node: Node | None) -> None:
        if node is not None and node.discoverable:
            self.discoverable[name] = node
        else:
            self.discoverable.pop(name, None)

    def first_discoverable(self) -> Node | None:
        if not self.discoverable:
            return None
        return self.discoverable[min(self.discoverable)]


class IndexFeeder:
    """Two watcher tasks keeping a ManifestIndex current; `start` returns once both have
    loaded what the buckets held."""

    def __init__(
        self, index: ManifestIndex, boot: Bucket[BootManifest], nodes: Bucket[Node]
    ) -> None:
        self.index = index
        self._boot = boot
        self._nodes = nodes
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        boot_ready, nodes_ready = asyncio.Event(), asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._watch_boot(boot_ready), name="bootd watch boot"),
            asyncio.create_task(self._watch_nodes(nodes_ready), name="bootd watch nodes"),
        ]
        await asyncio.gather(boot_ready.wait(), nodes_ready.wait())

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _watch_boot(self, ready: asyncio.Event) -> None:
        async with contextlib.aclosing(self._boot.watch(ready)) as changes:
            async for name, manifest, _ in changes:
                self.index.set_manifest(name, manifest)
                log.debug("manifest of %s %s", name, "deleted" if manifest is None else "loaded")

    async def _watch_nodes(self, ready: asyncio.Event) -> None:
        async with contextlib.aclosing(self._nodes.watch(ready)) as changes:
            async for name, node, _ in changes:
                self.index.set_node(name, node)
