"""Resolve a path inside a root folder the way a chroot at that root would: links never leave it.

An image comes from anywhere (a registry, a tarball); its `/lib` may be a symlink to `/usr/lib`
(merged /usr) or, in a hostile image, to `/etc` of the host. Joining and letting the host
follow links would read outside the image, so links are followed one component at a time with
absolute targets re-rooted and `..` stopping at the root.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Final

# Linux's own limit on links followed while resolving one path (MAXSYMLINKS).
MAX_LINKS: Final = 40


class LinkLoop(OSError):
    """More than MAX_LINKS symbolic links on the way: a loop, Linux's ELOOP."""


def resolve_in_root(root: Path, path: str) -> Path:
    """The host path of `path` (absolute or relative, inside the tree at `root`).

    Raises FileNotFoundError when a component is missing, NotADirectoryError when one that
    must be a folder is not, LinkLoop when links loop.
    """
    parts = _parts(path)
    done: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        candidate = root.joinpath(*done, part)
        info = os.lstat(candidate)
        if stat.S_ISLNK(info.st_mode):
            links += 1
            if links > MAX_LINKS:
                raise LinkLoop(errno.ELOOP, os.strerror(errno.ELOOP), str(candidate))
            target = os.readlink(candidate)
            if target.startswith("/"):
                done = []
            parts = _parts(target) + parts
            continue
        if parts and not stat.S_ISDIR(info.st_mode):
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(candidate))
        done.append(part)
    return root.joinpath(*done)


def find_in_root(root: Path, path: str) -> Path | None:
    """resolve_in_root, or None where `path` does not resolve (missing, not a folder, a loop)."""
    try:
        return resolve_in_root(root, path)
    except (FileNotFoundError, NotADirectoryError, LinkLoop):
        return None


def _parts(path: str) -> list[str]:
    return [part for part in path.split("/") if part not in ("", ".")]
