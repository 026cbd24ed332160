"""Where an overlay's files come from: the tree shipped in the package
(services/overlayd/overlays/<name>/, modes from its `.meta.json`) or a site overlay from
storage (KV `overlays` + the CAS). A site overlay shadows the shipped one of the same name.

Either way the renderer sees an `OverlayTree`: an immutable snapshot, content in memory
(overlays are small), with a revision that changes whenever anything in it does.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Literal, Protocol

import msgspec

from libs.common.errors import Invalid, NotFound
from libs.common.models.overlay import FileKind, OverlayMeta
from libs.common.store.cas import ContentStore
from services.overlayd.engine.paths import (
    META_FILE,
    check_overlay_name,
    is_template,
    output_path,
    overlay_path,
    parse_mode,
)

SHIPPED_ROOT = Path(__file__).resolve().parent.parent / "overlays"
DEFAULT_FILE_MODE = 0o644
DEFAULT_DIR_MODE = 0o755

Origin = Literal["shipped", "site"]


class Ownership(msgspec.Struct, frozen=True, kw_only=True):
    mode: int
    uid: int = 0
    gid: int = 0


class TreeEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One entry: `mode` holds the permission bits only; `data` a file's content."""

    kind: FileKind
    mode: int
    uid: int = 0
    gid: int = 0
    data: bytes = b""
    target: str = ""


class OverlayTree(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    origin: Origin
    # Changes with any content, mode or owner: compiled templates and renders are cached by it.
    revision: str
    entries: dict[str, TreeEntry]
    # Ownership `.meta.json` declares for paths a template writes with file() (not entries).
    declared: dict[str, Ownership] = msgspec.field(default_factory=dict)


def tree_revision(origin: str, name: str, entries: dict[str, TreeEntry], extra: bytes = b"") -> str:
    digest = hashlib.sha256(f"{origin}\0{name}\0".encode())
    for path in sorted(entries):
        entry = entries[path]
        digest.update(f"{path}\0{entry.kind}\0{entry.mode}\0{entry.uid}\0{entry.gid}\0".encode())
        digest.update(hashlib.sha256(entry.data).digest() + entry.target.encode() + b"\0")
    digest.update(extra)
    return f"{origin}:{digest.hexdigest()[:24]}"


# -- shipped overlays ---------------------------------------------------------------------------


class ShippedOverlays:
    """The overlays in the package, read once each (they change only with the package)."""

    def __init__(self, root: Path = SHIPPED_ROOT) -> None:
        self.root = Path(root)
        self._trees: dict[str, OverlayTree] = {}

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and _is_name(p.name))

    def get(self, name: str) -> OverlayTree | None:
        if name not in self._trees:
            folder = self.root / name
            if not _is_name(name) or not folder.is_dir():
                return None
            self._trees[name] = load_tree(folder, name)
        return self._trees[name]

    def reload(self) -> None:
        self._trees.clear()


def _is_name(name: str) -> bool:
    try:
        check_overlay_name(name)
    except Invalid:
        return False
    return True


def load_tree(folder: Path, name: str, origin: Origin = "shipped") -> OverlayTree:
    """An overlay directory as a tree: files, directories and symlinks (kept as links, never
    followed); owners and modes from `.meta.json`, else 0644/0755 root:root."""
    meta = _read_meta(folder)
    entries: dict[str, TreeEntry] = {}
    for top, dirs, files in os.walk(folder, followlinks=False):
        dirs.sort()
        for item in sorted(dirs) + sorted(files):
            full = Path(top) / item
            path = full.relative_to(folder).as_posix()
            if path == META_FILE:
                continue
            info = os.lstat(full)
            owner = meta.get(path) or meta.get(output_path(path))
            if stat.S_ISDIR(info.st_mode):
                entries[path] = _entry("dir", owner, DEFAULT_DIR_MODE)
            elif stat.S_ISLNK(info.st_mode):
                entries[path] = _entry("symlink", owner, 0o777, target=os.readlink(full))
            elif stat.S_ISREG(info.st_mode):
                entries[path] = _entry("file", owner, DEFAULT_FILE_MODE, data=full.read_bytes())
            else:
                raise Invalid(f"{full}: only files, directories and symlinks belong in an overlay")
    outputs = {output_path(p) for p in entries} | set(entries)
    declared = {p: o for p, o in meta.items() if p not in outputs}
    extra = msgspec.json.encode(dict(sorted(declared.items())))
    return OverlayTree(
        name=name,
        origin=origin,
        revision=tree_revision(origin, name, entries, extra),
        entries=entries,
        declared=declared,
    )


def _entry(
    kind: FileKind, owner: Ownership | None, mode: int, *, data: bytes = b"", target: str = ""
) -> TreeEntry:
    if owner is not None:
        return TreeEntry(
            kind=kind, mode=owner.mode, uid=owner.uid, gid=owner.gid, data=data, target=target
        )
    return TreeEntry(kind=kind, mode=mode, data=data, target=target)


def _read_meta(folder: Path) -> dict[str, Ownership]:
    """`.meta.json`: `{"path": {"mode": "0755", "uid": 0, "gid": 0}}`; paths name entries
    (with or without `.j2`) or files a template writes with file()."""
    source = folder / META_FILE
    if not source.is_file():
        return {}
    where = f"{folder.name}/{META_FILE}"
    try:
        raw = json.loads(source.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise Invalid(f"{where} is not valid JSON: {err}", field="meta") from None
    if not isinstance(raw, dict):
        raise Invalid(f"{where} must be an object of path → {{mode, uid, gid}}", field="meta")
    meta: dict[str, Ownership] = {}
    for key, value in raw.items():
        path = overlay_path(key, what=f"{where} path")
        if not isinstance(value, dict) or set(value) - {"mode", "uid", "gid"}:
            raise Invalid(f"{where}: {key} needs an object with mode, uid and/or gid", field="meta")
        uid, gid = value.get("uid", 0), value.get("gid", 0)
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (uid, gid)):
            raise Invalid(f"{where}: {key}: uid and gid must be numbers >= 0", field="meta")
        mode = value.get("mode")
        if isinstance(mode, int):
            raise Invalid(f'{where}: {key}: write the mode as an octal string like "0644"')
        default = DEFAULT_DIR_MODE if (folder / path).is_dir() else DEFAULT_FILE_MODE
        meta[path] = Ownership(
            mode=default if mode is None else parse_mode(mode, what=f"{where}: {key} mode"),
            uid=uid,
            gid=gid,
        )
    return meta


# -- site overlays ------------------------------------------------------------------------------


class SiteOverlays(Protocol):
    """The narrow part of storage the renderer needs."""

    async def get_or_none(self, name: str) -> OverlayMeta | None: ...


async def site_tree(meta: OverlayMeta, store: ContentStore) -> OverlayTree:
    """A stored site overlay as a tree, its files read from the store."""
    paths = [p for p, f in meta.files.items() if f.kind == "file" and f.digest]
    contents = await asyncio.gather(*(store.get_bytes(meta.files[p].digest or "") for p in paths))
    data = dict(zip(paths, contents, strict=True))
    entries = {
        path: TreeEntry(
            kind=f.kind,
            mode=f.mode,
            uid=f.uid,
            gid=f.gid,
            data=data.get(path, b""),
            target=f.target or "",
        )
        for path, f in meta.files.items()
    }
    return OverlayTree(
        name=meta.name,
        origin="site",
        revision=f"site:{meta.revision}:{tree_revision('site', meta.name, entries)[5:]}",
        entries=entries,
    )


class OverlaySources:
    """Resolves an overlay name to its tree: the site overlay if there is one, else shipped."""

    def __init__(
        self,
        shipped: ShippedOverlays,
        site: SiteOverlays | None = None,
        store: ContentStore | None = None,
    ) -> None:
        if site is not None and store is None:
            raise ValueError("site overlays need the content store their files are in")
        self.shipped = shipped
        self._site = site
        self._store = store
        # (name, KV revision) → tree; a stored revision never changes.
        self._site_trees: dict[str, tuple[int, OverlayTree]] = {}

    async def get(self, name: str) -> OverlayTree:
        tree = await self.get_or_none(name)
        if tree is None:
            raise NotFound(
                f"overlay {name!r} does not exist (neither shipped nor site)", field="name"
            )
        return tree

    async def get_or_none(self, name: str) -> OverlayTree | None:
        if self._site is not None and self._store is not None:
            meta = await self._site.get_or_none(name)
            if meta is not None:
                cached = self._site_trees.get(name)
                if cached is not None and cached[0] == meta.revision:
                    return cached[1]
                tree = await site_tree(meta, self._store)
                self._site_trees[name] = (meta.revision, tree)
                return tree
            self._site_trees.pop(name, None)
        return self.shipped.get(name)


def template_paths(tree: OverlayTree) -> list[str]:
    return sorted(p for p, e in tree.entries.items() if e.kind == "file" and is_template(p))
