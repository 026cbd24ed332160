"""The in-memory map bootd answers from: boot manifests by node and by MAC, the nodes that may
be discovered, and the kernels and images anyone may fetch. Fed by watching KV `boot`, `nodes`
and `images`, so a request never waits on NATS."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import Counter
from collections.abc import Container, Iterable
from typing import Any

from libs.common.bus.mirror import Mirror, WatchedBucket, start_all
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
        # Discoverable nodes (their own flag set) with the revision a claim is made at.
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

    def first_discoverable(self, skip: Container[str] = ()) -> Node | None:
        """The discoverable node first by name, but those in `skip` (claims already refused)."""
        left = [name for name in self.discoverable if name not in skip]
        return self.discoverable[min(left)] if left else None


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
    """Mirrors of KV `boot`, `nodes` and `images` keeping a ManifestIndex current; `start`
    returns once all three have loaded what the buckets held."""

    def __init__(
        self,
        index: ManifestIndex,
        boot: WatchedBucket[BootManifest],
        nodes: WatchedBucket[Node],
        images: WatchedBucket[ImageMeta],
    ) -> None:
        self.index = index
        # Of KV `nodes` only the discoverable ones are kept: bootd needs no other node, and
        # a site may have 100,000.
        discoverable: Mirror[Node, Node] = Mirror(
            nodes,
            lambda name, old, node: index.set_node(name, node),
            keep=lambda name, node: node if node.discoverable else None,
        )
        self._mirrors: tuple[Mirror[Any, Any], ...] = (
            Mirror(boot, self._manifest_changed),
            discoverable,
            Mirror(images, lambda name, old, image: index.set_image(name, image)),
        )

    async def start(self) -> None:
        await start_all(*self._mirrors)

    async def stop(self) -> None:
        await asyncio.gather(*(mirror.stop() for mirror in self._mirrors))

    def _manifest_changed(
        self, name: str, old: BootManifest | None, manifest: BootManifest | None
    ) -> None:
        self.index.set_manifest(name, manifest)
        log.debug("manifest of %s %s", name, "deleted" if manifest is None else "loaded")
