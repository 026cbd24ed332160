"""One archive member as the scan saw it: what the cpio header needs and what a chunk key covers."""

from __future__ import annotations

import msgspec


class Entry(msgspec.Struct, array_like=True, gc=False):
    """A path of the rootfs, relative to its root (`.` is the root itself), as the file system
    spells it (bytes: names need not be UTF-8, and the archive stores them as they are).

    `array_like`: a chunk key hashes the msgpack encoding of its entries; arrays keep that cheap.
    Every field that reaches the archive bytes is here, plus `ctime_ns`, `dev` and `ino`, which
    the key covers so that a rewrite keeping size and mtime still counts as a change (as git's
    index does).
    """

    path: bytes
    mode: int
    uid: int
    gid: int
    # Bytes of data in the archive: a regular file's size, a symlink target's length, else 0.
    size: int
    mtime_ns: int
    ctime_ns: int
    rdev: int
    dev: int
    ino: int
    # A symlink's target, as bytes (the file system's own spelling).
    target: bytes = b""
    # How many paths of the image share this regular file (hardlinks); 1 for everything else.
    links: int = 1
