"""The overlays as the API serves them: listings, one overlay's entries, an overlay rendered
for a node, and changes made through storage (which stores, then publishes
`wolfpack.overlay.<name>.updated`). No HTTP here.
"""

from __future__ import annotations

import asyncio
import io
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from libs.common.errors import Invalid, NotFound
from libs.common.formats.newc import Member
from libs.common.models.overlay import OverlayMeta
from libs.common.models.overlay_api import (
    ChmodRequest,
    MkdirRequest,
    OverlaySummary,
    RenderedFile,
)
from services.overlayd.cluster import ClusterView
from services.overlayd.engine import OverlayRenderer, RenderError
from services.overlayd.engine.paths import output_path, overlay_path
from services.overlayd.site_overlays import OverlayStorage

IMPORTS: Final = Path("overlayd") / "imports"


class Catalog:
    def __init__(
        self,
        storage: OverlayStorage,
        renderer: OverlayRenderer,
        view: ClusterView,
        data_dir: Path,
    ) -> None:
        self.storage = storage
        self.renderer = renderer
        self.view = view
        self._imports = Path(data_dir) / IMPORTS

    # -- reads ----------------------------------------------------------------------------

    async def listing(self, *, files: bool = False) -> list[OverlaySummary]:
        found = []
        for listing in await self.storage.list_overlays():
            summary = OverlaySummary(
                name=listing.name,
                origin=listing.origin,
                shadows=listing.shadows,
                revision=listing.revision,
                entries=listing.files,
            )
            if files:
                summary.files = (await self.storage.entries(listing.name))[1]
            found.append(summary)
        return found

    async def show(self, name: str) -> OverlaySummary:
        origin, files = await self.storage.entries(name)
        site = await self.storage.get_or_none(name) if origin == "site" else None
        return OverlaySummary(
            name=name,
            origin=origin,
            shadows=origin == "site" and self.storage.shipped.get(name) is not None,
            revision=site.revision if site else None,
            entries=len(files),
            files=files,
        )

    async def read(self, name: str, path: str) -> tuple[bytes, int | None]:
        """A file's content and the overlay's revision (None for a shipped overlay)."""
        data = await self.storage.read_file(name, path)
        site = await self.storage.get_or_none(name)
        return data, site.revision if site else None

    async def rendered(self, name: str, node: str) -> list[RenderedFile]:
        """Overlay `name` rendered for `node`, nothing stored."""
        await self.storage.entries(name)  # NotFound for an overlay that does not exist
        merged = self.view.merged()
        target = merged.get(node)
        if target is None:
            raise NotFound(f"no node named {node!r}", field="render")
        try:
            members = await self.renderer.render_files(
                target, name, list(merged.values()), self.view.images.items
            )
        except RenderError as err:
            raise Invalid(f"rendering for {node} failed: {err}", field="overlay") from None
        return [_rendered(member) for member in members]

    async def rendered_file(self, name: str, node: str, path: str) -> RenderedFile:
        wanted = output_path(overlay_path(path))
        for found in await self.rendered(name, node):
            if found.path == wanted:
                return found
        raise NotFound(f"{name} renders no {wanted} for {node}", field="path")

    # -- changes --------------------------------------------------------------------------

    async def create(self, name: str, *, empty: bool) -> OverlayMeta:
        return await self.storage.create(name, clone=False if empty else None)

    async def delete(self, name: str, *, revision: int | None = None) -> None:
        await self.storage.delete(name, revision=revision)

    async def put_file(
        self,
        name: str,
        path: str,
        data: bytes,
        *,
        mode: str | None = None,
        uid: int | None = None,
        gid: int | None = None,
        revision: int | None = None,
    ) -> OverlayMeta:
        return await self.storage.put_file(
            name, path, data, mode=mode, uid=uid, gid=gid, revision=revision
        )

    async def mkdir(
        self, name: str, wanted: MkdirRequest, *, revision: int | None = None
    ) -> OverlayMeta:
        return await self.storage.mkdir(
            name, wanted.path, mode=wanted.mode, uid=wanted.uid, gid=wanted.gid, revision=revision
        )

    async def chmod(
        self, name: str, wanted: ChmodRequest, *, revision: int | None = None
    ) -> OverlayMeta:
        return await self.storage.chmod(name, wanted.path, wanted.mode, revision=revision)

    async def import_archive(
        self, name: str, archive: bytes, *, dest: str = "", revision: int | None = None
    ) -> OverlayMeta:
        """A tar archive of a directory tree (what `wolfctl overlay import` sends), unpacked
        with its modes and (as root) owners, then imported below `dest`."""
        await asyncio.to_thread(self._imports.mkdir, parents=True, exist_ok=True)
        folder = Path(await asyncio.to_thread(tempfile.mkdtemp, dir=self._imports))
        try:
            await asyncio.to_thread(_unpack, archive, folder)
            return await self.storage.import_tree(name, folder, dest=dest, revision=revision)
        finally:
            await asyncio.to_thread(shutil.rmtree, folder, True)

    async def delete_files(
        self, name: str, paths: Sequence[str], *, recursive: bool, revision: int | None
    ) -> OverlayMeta:
        meta: OverlayMeta | None = None
        for path in paths:
            meta = await self.storage.delete_file(
                name, path, recursive=recursive, revision=revision
            )
            revision = meta.revision if revision is not None else None
        if meta is None:
            raise Invalid("name at least one path to delete", field="path")
        return meta


def _rendered(member: Member) -> RenderedFile:
    bits = stat.S_IMODE(member.mode)
    if stat.S_ISDIR(member.mode):
        return RenderedFile(path=member.path, kind="dir", mode=bits, uid=member.uid, gid=member.gid)
    if stat.S_ISLNK(member.mode):
        return RenderedFile(
            path=member.path,
            kind="symlink",
            mode=bits,
            uid=member.uid,
            gid=member.gid,
            target=member.data.decode(errors="replace"),
        )
    return RenderedFile(
        path=member.path,
        kind="file",
        mode=bits,
        uid=member.uid,
        gid=member.gid,
        size=len(member.data),
        data=member.data,
    )


def _keep_modes(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
    """tarfile's `data` filter (nothing written outside `dest`, no devices, no hard links out),
    but modes and owners as archived, and symlinks to anywhere: an overlay declares modes,
    and its links are resolved on the node, not here (nothing here follows them: the filter
    checks every later path with the links already unpacked resolved)."""
    probe = member.replace(linkname="placeholder", deep=False) if member.issym() else member
    checked = tarfile.data_filter(probe, dest)
    return checked.replace(
        linkname=member.linkname,
        mode=stat.S_IMODE(member.mode),
        uid=member.uid,
        gid=member.gid,
        deep=False,
    )


def _unpack(archive: bytes, folder: Path) -> None:
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:*") as tar:
            tar.extractall(folder, filter=_keep_modes, numeric_owner=True)
    except tarfile.FilterError as err:
        raise Invalid(f"refused archive entry: {err}", field="archive") from None
    except tarfile.TarError as err:
        raise Invalid(f"not a tar archive: {err}", field="archive") from None


def summary_of(meta: OverlayMeta) -> OverlaySummary:
    """What a change answers: the site overlay as it is now."""
    return OverlaySummary(
        name=meta.name,
        origin="site",
        revision=meta.revision,
        entries=len(meta.files),
        files=dict(meta.files),
    )
