"""Boot manifests (KV `boot`, key = node name): built from a node, its render and its image;
written only when they differ from what is stored, then announced (state first).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Final, Protocol

import msgspec

from libs.common import subjects
from libs.common.bus.announce import Announcement
from libs.common.bus.relay import KvChange
from libs.common.errors import NotFound
from libs.common.models.image import ImageMeta
from libs.common.models.node import Node
from libs.common.models.overlay import BootManifest, ManifestDeleted, RenderedEvent
from libs.common.nodes.macs import hwaddrs
from services.overlayd.engine import NodeRender

log = logging.getLogger("wolfpack.overlayd")

# KV writes (and their events) in flight at once.
WRITE_WINDOW: Final = 128
PROGRESS: Final = 64
_COMPARED: Final = tuple(f for f in BootManifest.__struct_fields__ if f != "revision")


class BootBucket(Protocol):
    """The narrow part of libs.common.bus.kv.Bucket the manifests need."""

    async def put(
        self, key: str, value: BootManifest, announce: Announcement | None = None
    ) -> int: ...
    async def delete(
        self, key: str, revision: int | None = None, announce: Announcement | None = None
    ) -> int: ...
    async def items(self) -> dict[str, BootManifest]: ...


def build_manifest(node: Node, render: NodeRender, image: ImageMeta | None) -> BootManifest:
    """`node` merged; `image` its KV `images` entry (None: no image, or not built yet)."""
    return BootManifest(
        node=node.name,
        hwaddrs=hwaddrs(node),
        asset_key=node.asset_key,
        image=node.image,
        kernel_digest=image.kernel_digest if image else None,
        image_digest=image.image_digest if image else None,
        system_digests=list(render.system_digests),
        runtime_digest=render.runtime_digest,
        kernel_args=list(node.kernel.args) if node.kernel else [],
        ipxe_template=node.ipxe_template,
    )


def changed_fields(old: BootManifest | None, new: BootManifest) -> list[str]:
    if old is None:
        return [f for f in _COMPARED if getattr(new, f) not in (None, [], "")]
    return [f for f in _COMPARED if getattr(old, f) != getattr(new, f)]


def changed_overlays(old: BootManifest | None, render: NodeRender) -> list[str]:
    """The system overlays in an archive that differs from the stored manifest's."""
    before = old.system_digests if old else []
    return [
        overlay
        for i, (group, digest) in enumerate(
            zip(render.system_groups, render.system_digests, strict=True)
        )
        if i >= len(before) or before[i] != digest
        for overlay in group
    ]


class Manifests:
    """KV `boot` as overlayd last wrote it (it is the only writer)."""

    def __init__(self, bucket: BootBucket) -> None:
        self._bucket = bucket
        self.current: dict[str, BootManifest] = {}

    async def load(self) -> None:
        self.current = await self._bucket.items()

    def get(self, node: str) -> BootManifest:
        found = self.current.get(node)
        if found is None:
            raise NotFound(f"node {node!r} has no boot manifest (yet)", field="name")
        return found

    def differs(self, manifest: BootManifest) -> bool:
        old = self.current.get(manifest.node)
        return old is None or msgspec.structs.replace(old, revision=0) != manifest

    async def write(
        self,
        updates: Sequence[tuple[BootManifest, NodeRender]],
        stop: Callable[[], bool] | None = None,
    ) -> tuple[int, list[str]]:
        """Store each manifest that changed, then publish its `rendered` event. Once `stop()`
        says so (asked after the first PROGRESS writes: each call makes progress), the rest is
        left unwritten. Returns how many were written and the nodes left."""
        changed = [(m, r) for m, r in updates if self.differs(m)]
        gate = asyncio.Semaphore(WRITE_WINDOW)
        left: list[str] = []
        started = 0

        async def one(manifest: BootManifest, render: NodeRender) -> None:
            nonlocal started
            async with gate:
                if started >= PROGRESS and stop is not None and stop():
                    left.append(manifest.node)
                    return
                started += 1
                old = self.current.get(manifest.node)
                event = RenderedEvent(
                    node=manifest.node,
                    revision=0,  # the write's, filled in by the relay
                    changed=changed_fields(old, manifest),
                    overlays=changed_overlays(old, render),
                    system_digests=manifest.system_digests,
                    runtime_digest=manifest.runtime_digest,
                )
                announce = Announcement(subjects.node(manifest.node, "rendered"), event)
                revision = await self._bucket.put(manifest.node, manifest, announce)
                self.current[manifest.node] = msgspec.structs.replace(manifest, revision=revision)

        await asyncio.gather(*(one(m, r) for m, r in changed))
        return len(changed) - len(left), left

    async def delete(self, nodes: Iterable[str]) -> int:
        """Remove the manifests of nodes that are gone; returns how many there were."""
        gone = [node for node in nodes if node in self.current]
        gate = asyncio.Semaphore(WRITE_WINDOW)

        async def one(node: str) -> None:
            async with gate:
                with contextlib.suppress(NotFound):  # already gone: what we wanted
                    await self._bucket.delete(node, announce=unrendered(node))
                self.current.pop(node, None)

        await asyncio.gather(*(one(node) for node in gone))
        return len(gone)


def unrendered(node: str) -> Announcement:
    """The event of a manifest's removal (its node is gone); the relay fills in the
    delete's revision."""
    event = ManifestDeleted(node=node, revision=0)
    return Announcement(subjects.node(node, "unrendered"), event)


def hand_made(change: KvChange) -> Announcement | None:
    """A manifest removed without overlayd still says so; one written by hand says nothing
    (what was rendered is not known)."""
    return unrendered(change.key) if change.deleted else None
