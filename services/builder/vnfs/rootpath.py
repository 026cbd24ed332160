"""Resolve a path inside an image root the way a chroot would: symlinks never leave the root.

An image comes from anywhere (a registry, a tarball); its `/lib` may be a symlink to `/usr/lib`
(merged /usr) or, in a hostile image, to `/etc` of the build host. Joining and letting the host
follow links would read outside the image, so links are followed one component at a time with
absolute targets re-rooted and `..` stopping at the root.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

# Linux's own limit on links followed while resolving one path (MAXSYMLINKS).
MAX_LINKS = 40


def resolve_in_root(root: Path, path: str) -> Path | None:
    """The host path of `path` (absolute or relative, inside the image at `root`), or None when
    a component is missing, is not a directory where one is needed, or links loop."""
    parts = [part for part in path.split("/") if part not in ("", ".")]
    done: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        candidate = root.joinpath(*done, part)
        try:
            info = os.lstat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if stat.S_ISLNK(info.st_mode):
            links += 1
            if links > MAX_LINKS:
                return None
            target = os.readlink(candidate)
            if target.startswith("/"):
                done = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        if parts and not stat.S_ISDIR(info.st_mode):
            return None
        done.append(part)
    return root.joinpath(*done)
