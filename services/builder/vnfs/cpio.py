"""newc ("070701") cpio writer, streamed: what `cpio -o -H newc` writes, as the kernel reads it.

Every field of a newc header is 8 hex digits, so a member holds at most 4 GiB - 1 bytes: a
larger file cannot be put in a newc archive at all (a limit Warewulf users hit; the scan refuses
such a file by name before any work starts).

Hardlinks: the kernel's unpacker (init/initramfs.c, maybe_link) links a later member with the
same ino/dev/mode to the first one it saw and only writes data it is given; GNU cpio -i takes
either order. So data goes with the first path of a file, later paths carry size 0, and all
of them say the same ino and nlink. Inode numbers are counted from 1 in each archive, so an
archive's bytes depend only on the entries it holds (like `cpio --renumber-inodes`), and the
device fields are 0.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator, Sequence

from libs.common.errors import Conflict
from libs.common.formats.newc import HEADER_SIZE, header, padding, trailer
from services.builder.vnfs.entries import Entry

# Files are read in blocks of this size, never whole.
BLOCK = 4 << 20
_MAX_FIELD = 0xFFFF_FFFF
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC


def member_size(entry: Entry, with_data: bool = True) -> int:
    """Bytes this entry takes in an archive (header, name, data and their padding)."""
    namesize = len(entry.path) + 1
    data = entry.size if with_data else 0
    return HEADER_SIZE + namesize + (-(HEADER_SIZE + namesize) & 3) + data + (-data & 3)


def archive_pieces(root: bytes, entries: Sequence[Entry]) -> Iterator[bytes]:
    """The bytes of one complete archive (ending in TRAILER!!!) of `entries`, in pieces of at
    most BLOCK data bytes; file contents are read from `root` as they are needed."""
    for head, entry, size in _members(entries):
        if stat.S_ISREG(entry.mode) and size:
            with _open_member(root, entry) as source:
                yield head
                left = size
                while left:
                    block = source.read(min(left, BLOCK))
                    if not block:
                        raise _changed(entry)
                    left -= len(block)
                    yield block
            yield padding(size)
        elif stat.S_ISLNK(entry.mode):
            yield head + entry.target + padding(size)
        else:
            yield head
    yield trailer()


def fill_archive(root: bytes, entries: Sequence[Entry], out: memoryview) -> int:
    """Write the archive of `entries` into `out` (at least its planned size, chunks.py), file
    data read straight into place; returns the bytes written."""
    pos = 0
    for head, entry, size in _members(entries):
        out[pos : pos + len(head)] = head
        pos += len(head)
        if stat.S_ISREG(entry.mode) and size:
            with _open_member(root, entry) as source:
                end = pos + size
                while pos < end:
                    count = source.readinto(out[pos:end])
                    if not count:
                        raise _changed(entry)
                    pos += count
        elif stat.S_ISLNK(entry.mode):
            out[pos : pos + size] = entry.target
            pos += size
        pad = -size & 3
        out[pos : pos + pad] = padding(size)
        pos += pad
    end_mark = trailer()
    out[pos : pos + len(end_mark)] = end_mark
    return pos + len(end_mark)


def _members(entries: Sequence[Entry]) -> Iterator[tuple[bytes, Entry, int]]:
    """(header, entry, data size in the archive) of each entry, inode numbers counted from 1."""
    inodes: dict[tuple[int, int], int] = {}
    for number, entry in enumerate(entries, start=1):
        mode = entry.mode
        ino = number
        size = entry.size
        if entry.links > 1:
            first = inodes.setdefault((entry.dev, entry.ino), number)
            if first != number:
                ino, size = first, 0
        rdev = entry.rdev
        head = header(
            entry.path,
            ino=ino,
            mode=mode,
            uid=entry.uid,
            gid=entry.gid,
            nlink=entry.links if stat.S_ISREG(mode) else (2 if stat.S_ISDIR(mode) else 1),
            mtime=min(max(entry.mtime_ns // 1_000_000_000, 0), _MAX_FIELD),
            size=size,
            rdevmajor=os.major(rdev) if rdev else 0,
            rdevminor=os.minor(rdev) if rdev else 0,
        )
        yield head, entry, size


def _open_member(root: bytes, entry: Entry) -> io.FileIO:
    """The entry's file, checked to be the regular file of the size the scan saw."""
    source = io.FileIO(os.open(os.path.join(root, entry.path), _OPEN_FLAGS), "rb")
    info = os.fstat(source.fileno())
    if not stat.S_ISREG(info.st_mode) or info.st_size != entry.size:
        source.close()
        raise _changed(entry)
    return source


def _changed(entry: Entry) -> Conflict:
    return Conflict(
        f"/{os.fsdecode(entry.path)} changed while the image was being built; build again",
        field="rootfs",
    )
