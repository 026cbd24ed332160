"""The in-memory map bootd answers from: boot manifests by node and by MAC, the nodes that may
be discovered, and the kernels and images anyone may fetch. Fed by watching KV `boot`, `nodes`
and `images`, so a request never waits on NATS."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections import Counter
from collections.abc import Iterable

from libs.common.bus.kv import Bucket
from libs.common.models.image import ImageMeta
from libs.common.models.node import Node
from libs.common.models.overlay import BootManifest
from libs.common.nodes.macs import maybe_mac

log = logging.getLogger("wolfpack.bootd.index")


class ManifestIndex:
    """Plain dicts replaced key by key as the watchers see changes (one event loop: no locks)."""

    def __init__(self) -> None:
        self.by_node: dict[str, BootManifest] = {}
        self.by_mac: dict[str, str] = {}
        # Discoverable nodes (their own flag set) with the revision to PATCH against.
        self.discoverable: dict[str, Node] = {}
        # How many manifests and images name each digest as a kernel or image (anyone may
        # fetch those), and each asset key (by its sha256: a key of another node asks for
        # what is not its own).
        self._public: Counter[str] = Counter()
        self._keys: Counter[str] = Counter()
        # The kernel and image of each image in KV `images`, as counted in _public.
        self._images: dict[str, tuple[str, ...]] = {}

    def manifest_for_mac(self, mac: str) -> BootManifest | None:
        node = self.by_mac.get(mac)
        return self.by_node.get(node) if node is not None else None

    def public(self, digest: str) -> bool:
        """Is `digest` (64 lowercase hex) a kernel or image that a current manifest or image
        names? Nodes need those before they have any key; nothing else goes to anyone."""
        return self._public[digest] > 0

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
        _add(self._public, _bare(manifest.kernel_digest, manifest.image_digest), step)
        keys = [_key_digest(manifest.asset_key)] if manifest.asset_key else []
        _add(self._keys, keys, step)

    def set_image(self, name: str, image: ImageMeta | None) -> None:
        _add(self._public, self._images.pop(name, ()), -1)
        if image is None:
            return
        self._images[name] = _bare(image.kernel_digest, image.image_digest)
        _add(self._public, self._images[name], 1)

    def set_node(self, name: str, node: Node | None) -> None:
        if node is not None and node.discoverable:
            self.discoverable[name] = node
        else:
            self.discoverable.pop(name, None)

    def first_discoverable(self) -> Node | None:
        if not self.discoverable:
            return None
        return self.discoverable[min(self.discoverable)]


def bare(digest: str) -> str:
    """A digest as bootd compares them: 64 lowercase hex, no `sha256:`."""
    return digest.removeprefix("sha256:").lower()


def _bare(*digests: str | None) -> tuple[str, ...]:
    return tuple(bare(d) for d in digests if d)


def _key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _add(counter: Counter[str], keys: Iterable[str], step: int) -> None:
    for key in keys:
        counter[key] += step
        if counter[key] <= 0:
            del counter[key]


class IndexFeeder:
    """Three watcher tasks keeping a ManifestIndex current; `start` returns once all have
    loaded what the buckets held."""

    def __init__(
        self,
        index: ManifestIndex,
        boot: Bucket[BootManifest],
        nodes: Bucket[Node],
        images: Bucket[ImageMeta],
    ) -> None:
        self.index = index
        self._boot = boot
        self._nodes = nodes
        self._images = images
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        ready = [asyncio.Event() for _ in range(3)]
        self._tasks = [
            asyncio.create_task(self._watch_boot(ready[0]), name="bootd watch boot"),
            asyncio.create_task(self._watch_nodes(ready[1]), name="bootd watch nodes"),
            asyncio.create_task(self._watch_images(ready[2]), name="bootd watch images"),
        ]
        await asyncio.gather(*(each.wait() for each in ready))

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

    async def _watch_images(self, ready: asyncio.Event) -> None:
        async with contextlib.aclosing(self._images.watch(ready)) as changes:
            async for name, image, _ in changes:
                self.index.set_image(name, image)
