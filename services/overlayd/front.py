"""What overlayd's routes call: one method per route, over the overlays (Catalog), the render
waves and the boot manifests. No HTTP here: typed errors, mapped to statuses at the edge."""

from __future__ import annotations

import msgspec

from libs.common.errors import NotFound
from libs.common.models.overlay import BootManifest
from libs.common.models.overlay_api import (
    ChmodRequest,
    MkdirRequest,
    OverlaydStatus,
    OverlaySummary,
    RenderedFile,
    WaveReport,
)
from libs.common.nodes import ranges
from libs.common.security.redact import MASK
from services.overlayd.catalog import Catalog, summary_of
from services.overlayd.cluster import ClusterView
from services.overlayd.incremental import Waves
from services.overlayd.manifests import Manifests


class OverlaydFront:
    def __init__(
        self, catalog: Catalog, view: ClusterView, waves: Waves, manifests: Manifests
    ) -> None:
        self.catalog = catalog
        self.view = view
        self.waves = waves
        self.manifests = manifests

    # -- overlays: reads --------------------------------------------------------------------

    async def listing(self, *, files: bool) -> list[OverlaySummary]:
        return await self.catalog.listing(files=files)

    async def overlay(self, name: str, render: str | None) -> OverlaySummary | list[RenderedFile]:
        """The overlay as stored, or rendered for node `render` (nothing stored)."""
        if render is not None:
            return await self.catalog.rendered(name, render)
        return await self.catalog.show(name)

    async def file(self, name: str, path: str, render: str | None) -> tuple[bytes, int | None]:
        """A file's bytes and the overlay's revision (None for a shipped overlay, or a file
        rendered for node `render`)."""
        if render is not None:
            found = await self.catalog.rendered_file(name, render, path)
            return found.data or b"", None
        return await self.catalog.read(name, path)

    # -- overlays: changes, each answered with the overlay as it is now -----------------------

    async def create(self, name: str, *, empty: bool) -> OverlaySummary:
        return summary_of(await self.catalog.create(name, empty=empty))

    async def delete(self, name: str, *, revision: int | None) -> None:
        await self.catalog.delete(name, revision=revision)

    async def put_file(
        self,
        name: str,
        path: str,
        data: bytes,
        *,
        mode: str | None,
        uid: int | None,
        gid: int | None,
        revision: int | None,
    ) -> OverlaySummary:
        meta = await self.catalog.put_file(
            name, path, data, mode=mode, uid=uid, gid=gid, revision=revision
        )
        return summary_of(meta)

    async def delete_file(
        self, name: str, path: str, *, recursive: bool, revision: int | None
    ) -> OverlaySummary:
        return summary_of(
            await self.catalog.delete_files(name, [path], recursive=recursive, revision=revision)
        )

    async def mkdir(
        self, name: str, wanted: MkdirRequest, *, revision: int | None
    ) -> OverlaySummary:
        return summary_of(await self.catalog.mkdir(name, wanted, revision=revision))

    async def chmod(
        self, name: str, wanted: ChmodRequest, *, revision: int | None
    ) -> OverlaySummary:
        return summary_of(await self.catalog.chmod(name, wanted, revision=revision))

    async def import_tree(
        self, name: str, archive: bytes, *, dest: str, revision: int | None
    ) -> OverlaySummary:
        return summary_of(
            await self.catalog.import_archive(name, archive, dest=dest, revision=revision)
        )

    # -- nodes ------------------------------------------------------------------------------

    async def build(self, nodes: str | None) -> WaveReport:
        """Render the nodes of hostlist range `nodes` (every node if None) in the next wave."""
        if nodes is None:
            return await self.waves.build(None)
        wanted = ranges.expand_names(nodes, field="nodes")
        missing = [name for name in wanted if name not in self.view.nodes.items]
        if missing:
            raise NotFound(f"no such nodes: {', '.join(missing[:10])}", field="nodes")
        return await self.waves.build(wanted)

    def manifest(self, name: str) -> BootManifest:
        """The node's boot manifest, its asset key masked: bootd alone compares it; nobody
        reads it here."""
        found = self.manifests.get(name)
        if found.asset_key is not None:
            found = msgspec.structs.replace(found, asset_key=MASK)
        return found

    def status(self) -> OverlaydStatus:
        return self.waves.status()
