"""The newc ("070701") cpio format the kernel unpacks: member headers, and whole small archives
built in memory (overlays). The builder streams big archives from disk with the same headers.

Every field is 8 hex digits, so a member holds at most 4 GiB - 1 bytes.
"""

from __future__ import annotations

import stat
from collections.abc import Iterable
from typing import Final

import msgspec

MAGIC: Final = b"070701"
HEADER_SIZE: Final = 110
MAX_MEMBER_SIZE: Final = 0xFFFF_FFFF
TRAILER: Final = b"TRAILER!!!"
_FIELDS: Final = MAGIC + b"%08X" * 13


def header(
    name: bytes,
    *,
    ino: int,
    mode: int,
    uid: int,
    gid: int,
    nlink: int,
    mtime: int,
    size: int,
    rdevmajor: int = 0,
    rdevminor: int = 0,
) -> bytes:
    """One member header with its NUL-terminated name, padded to a multiple of 4."""
    namesize = len(name) + 1
    fields = _FIELDS % (
        ino,
        mode,
        uid,
        gid,
        nlink,
        mtime,
        size,
        0,
        0,
        rdevmajor,
        rdevminor,
        namesize,
        0,
    )
    return fields + name + b"\0" * (1 + (-(HEADER_SIZE + namesize) & 3))


def padding(size: int) -> bytes:
    return b"\0" * (-size & 3)


def trailer() -> bytes:
    return header(TRAILER, ino=0, mode=0, uid=0, gid=0, nlink=1, mtime=0, size=0)


class Member(msgspec.Struct, frozen=True, kw_only=True):
    """One member of an in-memory archive. `mode` includes the file type bits; `data` is a
    regular file's content or a symlink's target; directories carry none."""

    path: str
    mode: int
    uid: int = 0
    gid: int = 0
    data: bytes = b""


def archive(members: Iterable[Member]) -> bytes:
    """A deterministic archive: members sorted by path, mtime 0, inodes counted from 1, so the
    same content always gives the same bytes (and so one blob in the store)."""
    out: list[bytes] = []
    for ino, m in enumerate(sorted(members, key=lambda m: m.path), start=1):
        data = b"" if stat.S_ISDIR(m.mode) else m.data
        if len(data) > MAX_MEMBER_SIZE:
            raise ValueError(f"{m.path}: {len(data)} bytes is more than newc can hold")
        name = m.path.lstrip("/").encode()
        nlink = 2 if stat.S_ISDIR(m.mode) else 1
        out.append(
            header(
                name,
                ino=ino,
                mode=m.mode,
                uid=m.uid,
                gid=m.gid,
                nlink=nlink,
                mtime=0,
                size=len(data),
            )
        )
        out.append(data)
        out.append(padding(len(data)))
    out.append(trailer())
    return b"".join(out)
