"""Cut the entry list into chunks, key each chunk by the metadata it covers, remember the keys.

Boundaries are content defined, so that inserting or changing one file moves at most the
boundaries next to it: after at least `min_size` bytes, a chunk ends after an entry when a hash
of its path falls under a threshold proportional to the entry's size (so the expected chunk size
does not depend on how files are sized), and always before `max_size` would be crossed. Every
later boundary depends only on the paths and sizes since the previous one, so the cuts fall in
step again right after a change. A hardlinked file's paths are never split (cpio.py).

A chunk's key hashes the format version, the compression and every entry it covers (path,
mode, owner, size, mtime, ctime, device, inode, link target, link count): a chunk with the same
key has the same bytes, so its stored blob is reused without reading a file.
"""

from __future__ import annotations

import hashlib
import logging
import zlib
from collections.abc import Sequence

import msgspec

from libs.common.formats.newc import trailer
from libs.common.store.chunk_index import FORMAT_VERSION
from services.builder.vnfs.compress import Compression
from services.builder.vnfs.cpio import member_size
from services.builder.vnfs.entries import Entry

log = logging.getLogger("wolfpack.builder.vnfs")

MiB = 1 << 20
_TRAILER_SIZE = len(trailer())


class ChunkSettings(msgspec.Struct, frozen=True):
    """Uncompressed sizes. Measured on a 200 MB Debian: 4 MiB chunks (1-16) build as fast and
    as small (+0.01 %) as 16 MiB ones (4-64), and a one-file rebuild recompresses 4 MiB, not
    16 to 64. A bigger chunk (one file over max_size) is streamed, see stream.py."""

    min_size: int = 1 * MiB
    avg_size: int = 4 * MiB
    max_size: int = 16 * MiB


class ChunkPlan(msgspec.Struct, frozen=True):
    """Entries [start, end) of the list; `size`: uncompressed archive bytes, trailer included."""

    start: int
    end: int
    key: str
    size: int


def plan_chunks(
    entries: Sequence[Entry],
    compression: Compression,
    settings: ChunkSettings = ChunkSettings(),  # noqa: B008 - frozen, never mutated
) -> list[ChunkPlan]:
    salt = msgspec.msgpack.encode((FORMAT_VERSION, compression.codec, compression.level))
    # Probability of a cut after an entry of w bytes = w / spread, once min_size is reached.
    spread = max(settings.avg_size - settings.min_size, 1)
    plans: list[ChunkPlan] = []
    start = 0
    size = 0
    linked_seen: set[tuple[int, int]] = set()

    def cut(end: int) -> None:
        nonlocal start, size
        plans.append(ChunkPlan(start, end, _key(salt, entries[start:end]), size + _TRAILER_SIZE))
        start, size = end, 0
        linked_seen.clear()

    count = len(entries)
    for index, entry in enumerate(entries):
        if (
            size
            and size + member_size(entry) > settings.max_size
            and _may_cut_before(entries, index)
        ):
            cut(index)
        with_data = True
        if entry.links > 1:
            identity = (entry.dev, entry.ino)
            with_data = identity not in linked_seen
            linked_seen.add(identity)
        width = member_size(entry, with_data)
        size += width
        if index + 1 < count and not _may_cut_before(entries, index + 1):
            continue
        if size >= settings.max_size or (
            size >= settings.min_size and zlib.crc32(entry.path) * spread < width << 32
        ):
            cut(index + 1)
    if start < count:
        cut(count)
    return plans


def _may_cut_before(entries: Sequence[Entry], index: int) -> bool:
    """False between two paths of the same hardlinked file."""
    if index == 0:
        return True
    here, before = entries[index], entries[index - 1]
    return not (here.links > 1 and (here.dev, here.ino) == (before.dev, before.ino))


def _key(salt: bytes, entries: Sequence[Entry]) -> str:
    hasher = hashlib.sha256(salt)
    hasher.update(msgspec.msgpack.encode(entries))
    return hasher.hexdigest()
