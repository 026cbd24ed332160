"""Walk a rootfs into the ordered list of archive entries (metadata only, no file is read).

Order: depth first, names sorted within each directory, a directory before what it holds, so the
order is stable from build to build and the kernel always meets a parent before its children.
One exception, hardlinks: the kernel's unpacker forgets inode numbers at every TRAILER!!!, so all
paths of one file must sit in the same chunk. They are emitted together at the place of the last
of them: every parent directory of every one of them has been emitted by then.

Mount points (another device, e.g. /proc bound during `image shell`) are kept as empty
directories with steady metadata and not entered, as Warewulf skips other devices; sockets are
left out (they mean nothing in an image).
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from libs.common.errors import Invalid
from libs.common.formats.newc import MAX_MEMBER_SIZE
from services.builder.vnfs.entries import Entry
from services.builder.vnfs.excludes import Excludes

log = logging.getLogger("wolfpack.builder.vnfs")


def scan_rootfs(root: Path, excludes: Excludes) -> list[Entry]:
    """Every entry of the image at `root` that `excludes` keeps, in archive order."""
    top = os.lstat(root)
    if not stat.S_ISDIR(top.st_mode):
        raise Invalid(f"image root {root} is not a directory", field="rootfs")
    entries = [_entry(b".", top, b"")]
    entries.extend(_walk(os.fsencode(root), top.st_dev, excludes))
    return _group_hardlinks(entries)


def _walk(root: bytes, root_dev: int, excludes: Excludes) -> Iterator[Entry]:
    # A stack of sorted listings; no recursion, so depth is not limited by Python's stack.
    stack: list[tuple[bytes, Iterator[os.DirEntry[bytes]]]] = [(b"", _listing(root))]
    while stack:
        prefix, listing = stack[-1]
        item = next(listing, None)
        if item is None:
            stack.pop()
            continue
        rel = prefix + item.name
        if excludes.matches(os.fsdecode(rel)):
            continue
        info = item.stat(follow_symlinks=False)
        mode = info.st_mode
        if stat.S_ISDIR(mode):
            if info.st_dev != root_dev:
                # A mount point: the mounted file system's times change all the time; keep
                # the directory with steady metadata so its chunk stays reusable.
                yield Entry(rel, mode, info.st_uid, info.st_gid, 0, 0, 0, 0, 0, 0)
                continue
            yield _entry(rel, info, b"")
            stack.append((rel + b"/", _listing(item.path)))
        elif stat.S_ISREG(mode):
            if info.st_dev != root_dev:
                log.warning("skipped /%s: a file mounted from another device", os.fsdecode(rel))
                continue
            if info.st_size > MAX_MEMBER_SIZE:
                raise Invalid(
                    f"/{os.fsdecode(rel)} is {info.st_size} bytes: a newc cpio member holds at "
                    f"most {MAX_MEMBER_SIZE} bytes (4 GiB - 1), so this file cannot be in the "
                    "image; remove it or add it to /etc/warewulf/excludes",
                    field="rootfs",
                )
            yield _entry(rel, info, b"")
        elif stat.S_ISLNK(mode):
            yield _entry(rel, info, os.readlink(item.path))
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
            yield _entry(rel, info, b"")
        else:
            log.debug("skipped /%s: a socket or other special file", os.fsdecode(rel))


def _listing(path: bytes) -> Iterator[os.DirEntry[bytes]]:
    with os.scandir(path) as found:
        items = list(found)
    items.sort(key=lambda item: item.name)
    return iter(items)


def _entry(rel: bytes, info: os.stat_result, target: bytes) -> Entry:
    mode = info.st_mode
    if stat.S_ISREG(mode):
        size = info.st_size
    elif stat.S_ISLNK(mode):
        size = len(target)
    else:
        size = 0
    return Entry(
        rel,
        mode,
        info.st_uid,
        info.st_gid,
        size,
        info.st_mtime_ns,
        info.st_ctime_ns,
        info.st_rdev,
        info.st_dev,
        info.st_ino,
        target,
    )


def _group_hardlinks(entries: list[Entry]) -> list[Entry]:
    """Move the paths of each multiply linked file next to each other (see the module doc)."""
    groups: dict[tuple[int, int], list[int]] = {}
    for index, entry in enumerate(entries):
        if stat.S_ISREG(entry.mode) and entry.ino and entry.path != b".":
            groups.setdefault((entry.dev, entry.ino), []).append(index)
    last_of: dict[int, list[int]] = {}
    members: set[int] = set()
    for indices in groups.values():
        if len(indices) > 1:
            last_of[indices[-1]] = indices
            members.update(indices)
            for index in indices:
                entries[index].links = len(indices)
    if not members:
        return entries
    ordered: list[Entry] = []
    for index, entry in enumerate(entries):
        if index in last_of:
            ordered.extend(entries[i] for i in last_of[index])
        elif index not in members:
            ordered.append(entry)
    return ordered
