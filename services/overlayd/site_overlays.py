"""Site overlays: KV `overlays` holds each one's entries (OverlayMeta), file contents are blobs
in the CAS. Every change is a new revision written with compare-and-set: a caller that read
revision R and sends it back (If-Match) gets a Conflict if someone else changed the overlay
since. Blobs of old revisions stay in the store until a garbage collection.

Editing a shipped overlay makes a site copy of it first, as Warewulf does when you edit a
distribution overlay; the copy then shadows the shipped one of the same name.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Literal, Protocol

import msgspec

from libs.common import subjects
from libs.common.bus.announce import Announcement, AnnouncingWrites
from libs.common.bus.relay import KvChange
from libs.common.errors import Conflict, Invalid, NotFound
from libs.common.models.overlay import OverlayEvent, OverlayFile, OverlayMeta
from libs.common.store.cas import ContentStore
from services.overlayd.engine.paths import check_overlay_name, overlay_path, parse_mode
from services.overlayd.engine.sources import OverlayTree, ShippedOverlays
from services.overlayd.site_entries import (
    Files,
    make_parents,
    owner_id,
    read_tree,
    tree_files,
)

Origin = Literal["shipped", "site"]


class OverlayListing(msgspec.Struct, frozen=True, kw_only=True):
    """One line of `wolfctl overlay list`."""

    name: str
    origin: Origin
    shadows: bool = False  # a site overlay hiding the shipped one of the same name
    revision: int | None = None
    files: int = 0


class OverlayBucket(AnnouncingWrites[OverlayMeta], Protocol):
    """The narrow part of libs.common.bus.kv.Bucket storage needs."""

    async def get_or_none(self, key: str) -> OverlayMeta | None: ...
    async def items(self) -> dict[str, OverlayMeta]: ...


class OverlayStorage:
    def __init__(
        self,
        bucket: OverlayBucket,
        store: ContentStore,
        shipped: ShippedOverlays,
    ) -> None:
        self._bucket = bucket
        self._store = store
        self.shipped = shipped

    # -- reads ----------------------------------------------------------------------------

    async def list_overlays(self) -> list[OverlayListing]:
        site = await self._bucket.items()
        shipped = set(self.shipped.names())
        found = [
            OverlayListing(
                name=name,
                origin="site",
                shadows=name in shipped,
                revision=meta.revision,
                files=len(meta.files),
            )
            for name, meta in site.items()
        ]
        for name in shipped - set(site):
            tree = self.shipped.get(name)
            found.append(
                OverlayListing(name=name, origin="shipped", files=len(tree.entries) if tree else 0)
            )
        return sorted(found, key=lambda listing: listing.name)

    async def get(self, name: str) -> OverlayMeta:
        """The site overlay `name` (NotFound if there is none, even if one is shipped)."""
        meta = await self.get_or_none(name)
        if meta is None:
            raise NotFound(f"no site overlay {name!r}", field="name")
        return meta

    async def get_or_none(self, name: str) -> OverlayMeta | None:
        return await self._bucket.get_or_none(check_overlay_name(name))

    async def entries(self, name: str) -> tuple[Origin, Files]:
        """What `name` holds, wherever it comes from (site first)."""
        meta = await self.get_or_none(name)
        if meta is not None:
            return "site", dict(meta.files)
        tree = self.shipped.get(name)
        if tree is None:
            raise NotFound(f"overlay {name!r} does not exist", field="name")
        return "shipped", tree_files(tree)

    async def digests(self) -> set[str]:
        """The blobs the site overlays reference now (what a garbage collection must keep)."""
        site = await self._bucket.items()
        return {f.digest for meta in site.values() for f in meta.files.values() if f.digest}

    async def read_file(self, name: str, path: str) -> bytes:
        clean = overlay_path(path)
        meta = await self.get_or_none(name)
        if meta is None:
            tree = self.shipped.get(name)
            entry = tree.entries.get(clean) if tree else None
            if tree is None:
                raise NotFound(f"overlay {name!r} does not exist", field="name")
            if entry is None or entry.kind != "file":
                raise NotFound(f"{name} has no file {clean}", field="path")
            return entry.data
        found = meta.files.get(clean)
        if found is None or found.kind != "file" or found.digest is None:
            raise NotFound(f"{name} has no file {clean}", field="path")
        return await self._store.get_bytes(found.digest)

    # -- writes ---------------------------------------------------------------------------

    async def create(self, name: str, *, clone: bool | None = None) -> OverlayMeta:
        """A new site overlay: a copy of the shipped one of the same name (`clone` None or
        True), else empty. Conflict if the site overlay exists."""
        check_overlay_name(name)
        tree = self.shipped.get(name)
        if clone and tree is None:
            raise NotFound(f"there is no shipped overlay {name!r} to copy", field="name")
        files = await self._copy(tree) if tree is not None and clone is not False else {}
        meta = OverlayMeta(name=name, files=files, cloned_from=name if files else None)
        revision = await self._bucket.create(name, meta, announcement(name, "updated", []))
        return msgspec.structs.replace(meta, revision=revision)

    async def put_file(
        self,
        name: str,
        path: str,
        data: bytes,
        *,
        mode: int | str | None = None,
        uid: int | None = None,
        gid: int | None = None,
        revision: int | None = None,
    ) -> OverlayMeta:
        """Create or replace a file (a template if `path` ends in `.j2`). Mode and owner
        default to the replaced file's, else 0644 root:root."""
        clean = overlay_path(path)
        digest = await self._store.put_bytes(data)
        bits = None if mode is None else parse_mode(mode)

        def change(files: Files) -> list[str]:
            old = files.get(clean)
            if old is not None and old.kind == "dir":
                raise Invalid(f"{clean} is a directory", field="path")
            make_parents(files, clean)
            files[clean] = OverlayFile(
                kind="file",
                digest=digest,
                size=len(data),
                mode=bits if bits is not None else (old.mode if old else 0o644),
                uid=owner_id(uid, old.uid if old else 0, "uid"),
                gid=owner_id(gid, old.gid if old else 0, "gid"),
            )
            return [clean]

        return await self._change(name, revision, change)

    async def symlink(
        self, name: str, path: str, target: str, *, revision: int | None = None
    ) -> OverlayMeta:
        clean = overlay_path(path)
        if not target or "\x00" in target or len(target) > 4096:
            raise Invalid(f"symlink target {target[:80]!r} is not a path", field="target")

        def change(files: Files) -> list[str]:
            old = files.get(clean)
            if old is not None and old.kind == "dir":
                raise Invalid(f"{clean} is a directory", field="path")
            make_parents(files, clean)
            files[clean] = OverlayFile(kind="symlink", target=target, mode=0o777)
            return [clean]

        return await self._change(name, revision, change)

    async def mkdir(
        self,
        name: str,
        path: str,
        *,
        mode: int | str = 0o755,
        uid: int = 0,
        gid: int = 0,
        revision: int | None = None,
    ) -> OverlayMeta:
        """A directory (and its missing parents); an existing one gets the mode and owner."""
        clean = overlay_path(path)
        bits = parse_mode(mode)

        def change(files: Files) -> list[str]:
            old = files.get(clean)
            if old is not None and old.kind != "dir":
                raise Invalid(f"{clean} exists and is a {old.kind}", field="path")
            make_parents(files, clean)
            uid_, gid_ = owner_id(uid, 0, "uid"), owner_id(gid, 0, "gid")
            files[clean] = OverlayFile(kind="dir", mode=bits, uid=uid_, gid=gid_)
            return [clean]

        return await self._change(name, revision, change)

    async def chmod(
        self, name: str, path: str, mode: int | str, *, revision: int | None = None
    ) -> OverlayMeta:
        clean = overlay_path(path)
        bits = parse_mode(mode)

        def change(files: Files) -> list[str]:
            old = _existing(files, name, clean)
            if old.kind == "symlink":
                raise Invalid(f"{clean} is a symlink: it has no mode of its own", field="path")
            files[clean] = msgspec.structs.replace(old, mode=bits)
            return [clean]

        return await self._change(name, revision, change)

    async def chown(
        self, name: str, path: str, uid: int, gid: int | None = None, *, revision: int | None = None
    ) -> OverlayMeta:
        clean = overlay_path(path)

        def change(files: Files) -> list[str]:
            old = _existing(files, name, clean)
            owner = owner_id(uid, old.uid, "uid")
            files[clean] = msgspec.structs.replace(
                old, uid=owner, gid=owner_id(gid, old.gid, "gid")
            )
            return [clean]

        return await self._change(name, revision, change)

    async def delete_file(
        self, name: str, path: str, *, recursive: bool = False, revision: int | None = None
    ) -> OverlayMeta:
        clean = overlay_path(path)

        def change(files: Files) -> list[str]:
            _existing(files, name, clean)
            inside = [p for p in files if p.startswith(clean + "/")]
            if inside and not recursive:
                raise Invalid(f"{clean} is a directory that is not empty", field="path")
            for gone in [clean, *inside]:
                del files[gone]
            return sorted([clean, *inside])

        return await self._change(name, revision, change)

    async def delete(self, name: str, *, revision: int | None = None) -> None:
        """Delete the site overlay (a shipped one of the same name shows again)."""
        current = await self.get(name)
        event = announcement(name, "deleted", [])
        await self._bucket.delete(name, current.revision if revision is None else revision, event)

    async def import_tree(
        self, name: str, source: Path, *, dest: str = "", revision: int | None = None
    ) -> OverlayMeta:
        """Copy a host directory tree into the overlay below `dest` (its root by default):
        files, directories and symlinks with their modes and owners; same paths replaced."""
        prefix = overlay_path(dest) + "/" if dest.strip("/.") else ""
        found = await asyncio.to_thread(read_tree, Path(source))
        digests = await self._store.put_many([data for _, _, data in found if data is not None])
        blobs = iter(digests)
        imported: Files = {}
        for path, entry, data in found:
            if data is not None:
                entry = msgspec.structs.replace(entry, digest=next(blobs))
            imported[overlay_path(prefix + path)] = entry

        def change(files: Files) -> list[str]:
            for path, entry in imported.items():
                old = files.get(path)
                if old is not None and (old.kind == "dir") != (entry.kind == "dir"):
                    raise Invalid(f"{path}: a {old.kind} in the overlay, a {entry.kind} here")
                make_parents(files, path)
                files[path] = entry
            return sorted(imported)

        return await self._change(name, revision, change)

    # -- helpers --------------------------------------------------------------------------

    async def _change(
        self, name: str, revision: int | None, change: Callable[[Files], list[str]]
    ) -> OverlayMeta:
        """Read, change, write back at the revision read: one compare-and-set."""
        check_overlay_name(name)
        current = await self._bucket.get_or_none(name)
        if current is None:
            tree = self.shipped.get(name)
            if tree is None:
                raise NotFound(f"overlay {name!r} does not exist", field="name")
            if revision:
                raise Conflict(
                    f"stale revision: expected {revision}, but {name} is still the shipped overlay",
                    field="revision",
                )
            files: Files = await self._copy(tree)
            cloned_from: str | None = name
        else:
            if revision is not None and revision != current.revision:
                raise Conflict(
                    f"stale revision: expected {revision}, current {current.revision}",
                    field="revision",
                )
            files, cloned_from = dict(current.files), current.cloned_from
        paths = change(files)
        meta = OverlayMeta(name=name, files=dict(sorted(files.items())), cloned_from=cloned_from)
        event = announcement(name, "updated", paths)
        if current is None:
            written = await self._bucket.create(name, meta, event)
        else:
            written = await self._bucket.update(name, meta, current.revision, event)
        return msgspec.structs.replace(meta, revision=written)

    async def _copy(self, tree: OverlayTree) -> Files:
        """The shipped tree as site entries, its files stored as blobs."""
        files = tree_files(tree)
        paths = [p for p, f in files.items() if f.kind == "file"]
        await self._store.put_many([tree.entries[p].data for p in paths])
        return files


def _existing(files: Files, name: str, path: str) -> OverlayFile:
    found = files.get(path)
    if found is None:
        raise NotFound(f"{name} has no {path}", field="path")
    return found


def announcement(
    name: str, action: Literal["updated", "deleted"], paths: list[str]
) -> Announcement:
    """The event of a write to KV `overlays`; the relay fills in the write's revision."""
    event = OverlayEvent(name=name, action=action, revision=0, paths=paths)
    return Announcement(subjects.overlay(name, action), event)


def hand_made(change: KvChange) -> Announcement:
    """The event of a write made without overlayd: which paths changed is not known."""
    return announcement(change.key, "deleted" if change.deleted else "updated", [])
