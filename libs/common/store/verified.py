"""Blobs checked against their digest before they are served, once per version of the file.

A blob's file should never change, but a disk, a person or a bug can change it in place. The
Verifier hashes a blob the first time it is asked about and remembers the verdict with the
file's identity (device, inode, size, mtime, ctime): the same file later is answered from
memory (the caller's stat is all it costs); a changed or replaced file is hashed again.
Concurrent first asks share one hash, run in a small thread pool of its own (hashlib releases
the GIL), so a boot storm hashes each blob once and other file reads never queue behind it.

What it cannot see: bytes that change under the file system without touching mtime or ctime
(disk rot). `wolfpack fsck` reads every blob again for that.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final, NamedTuple

import msgspec

from libs.common.errors import NotFound, WolfpackError
from libs.common.store.cas import ContentStore, parse_digest

log = logging.getLogger("wolfpack.verified")

# Verdicts kept (least recently asked go first): a few MB for a store of this many blobs.
REMEMBER: Final = 65536
WORKERS: Final = 2


class FileIdentity(NamedTuple):
    """What changes when a file is rewritten in place or replaced by another."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int


def identity_of(found: os.stat_result) -> FileIdentity:
    return FileIdentity(
        found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns
    )


class BlobCorrupt(WolfpackError):
    """A stored blob's bytes do not hash to its name: it must not be served."""

    def __init__(self, digest: str, actual: str, size: int) -> None:
        super().__init__(
            f"blob {digest} in the store is corrupt (its {size} bytes hash to {actual}); "
            "not served: run `wolfpack fsck --quarantine`, then rebuild what uses it",
            field="digest",
        )
        self.digest = digest
        self.actual = actual


class VerifyCounts(msgspec.Struct, kw_only=True):
    # File versions whose verdict is remembered.
    remembered: int
    # Hashes run, and the bytes they read.
    hashed: int
    hashed_bytes: int
    # Asks answered from memory.
    hits: int
    # Corrupt file versions found, and the asks refused because of them.
    corrupt: int
    refused: int


class Verdict(NamedTuple):
    identity: FileIdentity
    actual: str  # what the bytes hash to


class Verifier:
    """Checks blobs of `store`; `close` stops its threads."""

    def __init__(
        self, store: ContentStore, *, workers: int = WORKERS, remember: int = REMEMBER
    ) -> None:
        self._store = store
        self._remember = remember
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="verify")
        self._known: collections.OrderedDict[str, Verdict] = collections.OrderedDict()
        self._hashing: dict[tuple[str, FileIdentity], asyncio.Future[Verdict]] = {}
        self._hashed = self._hashed_bytes = self._hits = self._corrupt = self._refused = 0

    async def check(self, digest: str, found: os.stat_result) -> None:
        """Return if the file of `digest`, as `found` by the caller's stat, holds the bytes
        of `digest`; BlobCorrupt if not, NotFound if it went away."""
        hexdigits = parse_digest(digest)
        identity = identity_of(found)
        verdict = self._known.get(hexdigits)
        if verdict is not None and verdict.identity == identity:
            self._known.move_to_end(hexdigits)
            self._hits += 1
        else:
            verdict = await self._hash_once(hexdigits, identity)
        if verdict.actual != hexdigits:
            self._refused += 1
            raise BlobCorrupt(hexdigits, verdict.actual, verdict.identity.size)

    def counts(self) -> VerifyCounts:
        return VerifyCounts(
            remembered=len(self._known),
            hashed=self._hashed,
            hashed_bytes=self._hashed_bytes,
            hits=self._hits,
            corrupt=self._corrupt,
            refused=self._refused,
        )

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _hash_once(self, hexdigits: str, identity: FileIdentity) -> Verdict:
        key = (hexdigits, identity)
        running = self._hashing.get(key)
        if running is None:
            running = asyncio.ensure_future(self._hash(hexdigits))
            self._hashing[key] = running
            running.add_done_callback(lambda _: self._hashing.pop(key, None))
        # Shielded: a node hanging up must not cancel the hash the others wait for.
        return await asyncio.shield(running)

    async def _hash(self, hexdigits: str) -> Verdict:
        path = self._store.path(hexdigits)
        loop = asyncio.get_running_loop()
        try:
            verdict, steady = await loop.run_in_executor(self._pool, _hash_file, path)
        except FileNotFoundError:
            raise NotFound(f"blob {hexdigits} not in the store", field="digest") from None
        self._hashed += 1
        self._hashed_bytes += verdict.identity.size
        if steady:  # changed while it was read: this verdict is for this answer only
            self._known[hexdigits] = verdict
            self._known.move_to_end(hexdigits)
            while len(self._known) > self._remember:
                self._known.popitem(last=False)
        if verdict.actual != hexdigits:
            self._corrupt += 1
            log.error(
                "blob %s is corrupt: its %d bytes hash to %s; not served until it is replaced "
                "(wolfpack fsck --quarantine)",
                hexdigits,
                verdict.identity.size,
                verdict.actual,
            )
        return verdict


def _hash_file(path: Path) -> tuple[Verdict, bool]:
    """The file's verdict, and whether it stayed the same file while it was read."""
    with open(path, "rb", buffering=0) as blob:
        before = identity_of(os.fstat(blob.fileno()))
        actual = hashlib.file_digest(blob, "sha256").hexdigest()
        after = identity_of(os.fstat(blob.fileno()))
    return Verdict(before, actual), before == after
