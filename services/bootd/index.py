"""The in-memory map bootd answers from: boot manifests by node and by MAC, and the nodes that
may be discovered. Fed by watching KV `boot` and `nodes`, so a request never waits on NATS."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections import Counter
from collections.abc import Iterable

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
        # How many manifests name each digest as a kernel or image (anyone may fetch those),
        # and as an overlay archive (only its node may), and each asset key (by its sha256:
        # a key of another node asks for what is not its own).
        self._public: Counter[str] = Counter()
        self._overlays: Counter[str] = Counter()
        self._keys: Counter[str] = Counter()

    def manifest_for_mac(self, mac: str) -> BootManifest | None:
        node = self.by_mac.get(mac)
        return self.by_node.get(node) if node is not None else None

    def overlay_only(self, digest: str) -> bool:
        """Is `digest` some node's system or runtime archive (and nobody's kernel or image)?"""
        return self._overlays[digest] > 0 and self._public[digest] == 0

    def known_key(self, key: str) -> bool:
        """Is `key` the asset key of some node?"""
        return self._keys[_key_digest(key)] > 0

    def set_manifest(self, name: str, manifest: BootManifest | None) -> None:
        old = self.by_node.pop(name, None)
        if old is not None:
            for mac in old.hwaddrs:
                found = maybe_mac(mac)
                if found is not None and self.by_mac.get(found) == name:
                    del self.by_mac[found]
            self._count(old, -1)
        if manifest is None:
            return
        self.by_node[name] = manifest
        self._count(manifest, 1)
        for mac in manifest.hwaddrs:
            found = maybe_mac(mac)
            if found is not None:
                self.by_mac[found] = name

    def _count(self, manifest: BootManifest, step: int) -> None:
        public = (manifest.kernel_digest, manifest.image_digest)
        overlays = (*manifest.system_digests, manifest.runtime_digest)
        keys = [_key_digest(manifest.asset_key)] if manifest.asset_key else []
        for counter, found in ((self._public, public), (self._overlays, overlays)):
            _add(counter, [d for d in found if d], step)
        _add(self._keys, keys, step)

    def set_node(self, name: str, node: Node | None) -> None:
        if node is not None and node.discoverable:
            self.discoverable[name] = node
        else:
            self.discoverable.pop(name, None)

    def first_discoverable(self) -> Node | None:
        if not self.discoverable:
            return None
        return self.discoverable[min(self.discoverable)]


def _key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _add(counter: Counter[str], keys: Iterable[str], step: int) -> None:
    for key in keys:
        counter[key] += step
        if counter[key] <= 0:
            del counter[key]


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
