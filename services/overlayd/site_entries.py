"""Site overlay entries from elsewhere: a shipped tree or a host directory (`overlay import`),
and the tree rules every change keeps (parents exist and are directories, owners are ids)."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Final

from libs.common.errors import Invalid
from libs.common.models.overlay import OverlayFile
from services.overlayd.engine.paths import parents
from services.overlayd.engine.sources import OverlayTree

MAX_IMPORT_FILES: Final = 10_000
MAX_IMPORT_BYTES: Final = 256 << 20

Files = dict[str, OverlayFile]


def tree_files(tree: OverlayTree) -> Files:
    files: Files = {}
    for path, entry in sorted(tree.entries.items()):
        if entry.kind == "file":
            digest = hashlib.sha256(entry.data).hexdigest()
            files[path] = OverlayFile(
                kind="file",
                digest=digest,
                size=len(entry.data),
                mode=entry.mode,
                uid=entry.uid,
                gid=entry.gid,
            )
        elif entry.kind == "symlink":
            files[path] = OverlayFile(kind="symlink", target=entry.target, mode=0o777)
        else:
            files[path] = OverlayFile(kind="dir", mode=entry.mode, uid=entry.uid, gid=entry.gid)
    return files


def make_parents(files: Files, path: str) -> None:
    for parent in parents(path):
        found = files.get(parent)
        if found is None:
            files[parent] = OverlayFile(kind="dir", mode=0o755)
        elif found.kind != "dir":
            raise Invalid(
                f"{parent} is a {found.kind}, so {path} cannot be inside it", field="path"
            )


def owner_id(value: int | None, default: int, what: str) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        raise Invalid(f"{what} {value!r} is not a number from 0 to 4294967295", field=what)
    return value


def read_tree(source: Path) -> list[tuple[str, OverlayFile, bytes | None]]:
    """Every entry below `source` (symlinks kept, never followed), with file contents."""
    if not source.is_dir():
        raise Invalid(f"{source} is not a directory", field="source")
    found: list[tuple[str, OverlayFile, bytes | None]] = []
    total = 0
    for top, dirs, names in os.walk(source, followlinks=False):
        dirs.sort()
        for item in sorted(dirs) + sorted(names):
            full = Path(top) / item
            path = full.relative_to(source).as_posix()
            info = os.lstat(full)
            bits, uid, gid = stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid
            if stat.S_ISDIR(info.st_mode):
                found.append((path, OverlayFile(kind="dir", mode=bits, uid=uid, gid=gid), None))
            elif stat.S_ISLNK(info.st_mode):
                link = OverlayFile(kind="symlink", target=os.readlink(full), mode=0o777)
                found.append((path, link, None))
            elif stat.S_ISREG(info.st_mode):
                data = full.read_bytes()
                total += len(data)
                entry = OverlayFile(kind="file", size=len(data), mode=bits, uid=uid, gid=gid)
                found.append((path, entry, data))
            else:
                raise Invalid(f"{full}: only files, directories and symlinks can be imported")
            if len(found) > MAX_IMPORT_FILES or total > MAX_IMPORT_BYTES:
                raise Invalid(
                    f"{source} is too big for an overlay (at most {MAX_IMPORT_FILES} entries, "
                    f"{MAX_IMPORT_BYTES >> 20} MiB)",
                    field="source",
                )
    return found
