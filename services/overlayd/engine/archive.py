"""Overlay archives: deterministic newc cpio, gzip'd with mtime 0, so equal content is equal
bytes and one blob. Compressing is most of the cost of a small archive, so the packer
remembers sha256(uncompressed) → blob digest and compresses each distinct content once.

What a wave packs is provisional (in the wave's own `pending`) until its blobs are in the
store and it is committed; a wave that fails just drops its `pending`, so a remembered digest
always names a stored blob.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Final

from zlib_ng import zlib_ng

from libs.common.formats.newc import Member, archive

GZIP_LEVEL: Final = 6
GZIP_WBITS: Final = 31  # a gzip wrapper; zlib writes mtime 0 and no file name
MAX_REMEMBERED: Final = 400_000


def gzip_bytes(data: bytes) -> bytes:
    return zlib_ng.compress(data, GZIP_LEVEL, wbits=GZIP_WBITS)


def pack_bytes(members: Iterable[Member]) -> bytes:
    """The gzip'd archive of `members`, without any cache (for tools and tests)."""
    return gzip_bytes(archive(members))


Pending = dict[bytes, str]  # sha256 of an archive → digest of its blob, not yet stored


class ArchivePacker:
    def __init__(self, max_remembered: int = MAX_REMEMBERED) -> None:
        self._known: dict[bytes, str] = {}
        self._max = max_remembered

    def pack(self, members: Iterable[Member], pending: Pending) -> tuple[str, bytes | None]:
        """(blob digest, blob) — the blob is None when it is already stored or on its way."""
        raw = archive(members)
        key = hashlib.sha256(raw).digest()
        digest = self._known.get(key) or pending.get(key)
        if digest is not None:
            return digest, None
        blob = gzip_bytes(raw)
        digest = hashlib.sha256(blob).hexdigest()
        pending[key] = digest
        return digest, blob

    def commit(self, pending: Pending) -> None:
        """The blobs of `pending` are stored."""
        self._known.update(pending)
        if len(self._known) > self._max:
            # Forget the oldest half (dicts keep insertion order): cheap, and rarely needed.
            for key in list(self._known)[: len(self._known) // 2]:
                del self._known[key]

    def clear(self) -> None:
        """Forget everything (after a garbage collection of the store)."""
        self._known.clear()
