"""Checking the store: every blob hashed again against the digest it is stored under.

A blob is corrupt when its bytes hash to another digest (`mismatch`; `empty` for a file
emptied by a crash), when it cannot be read (`unreadable`), or when a file sits where no blob
should (`misplaced`: wrong folder, not a digest name, a link, a folder). Corrupt files can be
moved to the quarantine (never deleted), and each is named with what references it and the
command that makes it again. Hashing streams 1 MiB at a time in worker threads: hashlib
releases the GIL, so every core hashes.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final, Literal

import msgspec

from libs.common.store.cas import CHUNK, ContentStore, is_digest
from libs.common.store.files import (
    Progress,
    StoredFile,
    iter_blobs,
    iter_strays,
    no_progress,
    quarantine,
)
from libs.common.store.references import References

Problem = Literal["mismatch", "empty", "unreadable", "misplaced"]
# Blobs hashed in one trip to a worker thread: up to this many, or this many bytes.
BATCH_FILES: Final = 256
BATCH_BYTES: Final = 8 << 20


class Corrupt(msgspec.Struct, kw_only=True):
    path: str
    # The digest its name says (None when the name is none).
    digest: str | None
    problem: Problem
    detail: str
    referrers: list[str] = msgspec.field(default_factory=list)
    remedies: list[str] = msgspec.field(default_factory=list)
    quarantined: str | None = None


class Missing(msgspec.Struct, kw_only=True):
    """A referenced blob the store does not hold (quarantined, say): rebuild it."""

    digest: str
    referrers: list[str]
    remedies: list[str]


class FsckReport(msgspec.Struct, kw_only=True):
    blobs_checked: int
    bytes_checked: int
    corrupt: list[Corrupt]
    missing: list[Missing] = msgspec.field(default_factory=list)
    # False when the references could not be read: `referrers` are then unknown, not empty.
    referrers_known: bool = False
    quarantined: int = 0
    seconds: float = 0.0
    warnings: list[str] = msgspec.field(default_factory=list)


def verify_blob(path: Path, digest: str, buffer: bytearray | None = None) -> Corrupt | None:
    """None if the file at `path` holds the bytes of `digest` (or vanished: gc removed it).
    `buffer`: where reads go (reused across blobs: allocating 1 MiB costs more than a small
    blob's hash)."""
    hasher = hashlib.sha256()
    buffer = buffer if buffer is not None else bytearray(CHUNK)
    view = memoryview(buffer)
    size = 0
    try:
        with open(path, "rb", buffering=0) as blob:
            while count := blob.readinto(buffer):
                hasher.update(view[:count])
                size += count
    except FileNotFoundError:
        return None
    except OSError as err:
        return Corrupt(path=str(path), digest=digest, problem="unreadable", detail=str(err))
    actual = hasher.hexdigest()
    if actual == digest:
        return None
    if size == 0:
        return Corrupt(path=str(path), digest=digest, problem="empty", detail="the file is empty")
    return Corrupt(
        path=str(path),
        digest=digest,
        problem="mismatch",
        detail=f"{size} bytes that hash to {actual}",
    )


def misplaced(path: Path) -> Corrupt:
    """A stray of the store (storefiles.iter_strays) as a finding."""
    name = path.name
    if path.is_symlink():
        detail = "a symbolic link, not a blob"
    elif path.is_dir():
        detail = "a folder where a blob or a blob folder should be"
    elif is_digest(name):
        detail = f"a blob in the wrong folder (belongs in {name[:2]}/)"
    else:
        detail = "not a blob: its name is not a sha256 digest"
    return Corrupt(
        path=str(path),
        digest=name if is_digest(name) else None,
        problem="misplaced",
        detail=detail,
    )


async def check_store(
    store: ContentStore, *, workers: int | None = None, on_progress: Progress = no_progress
) -> FsckReport:
    """Hash every blob again (`workers` threads, default one a core); nothing is moved."""
    started = time.perf_counter()
    blobs = await asyncio.to_thread(lambda: list(iter_blobs(store)))
    strays = await asyncio.to_thread(lambda: list(iter_strays(store)))
    total = sum(blob.size for blob in blobs)
    found: list[Corrupt] = [misplaced(path) for path in strays]
    done = 0
    queue: Iterator[list[StoredFile]] = _batches(blobs)

    async def worker() -> None:
        nonlocal done
        for batch in queue:  # shared: each batch goes to one worker
            found.extend(await asyncio.to_thread(_verify_batch, batch))
            done += sum(blob.size for blob in batch)
            on_progress("hashing", done, total)

    count = workers or len(os.sched_getaffinity(0)) or 1
    on_progress("hashing", 0, total)
    await asyncio.gather(*(worker() for _ in range(count)))
    found.sort(key=lambda corrupt: corrupt.path)
    return FsckReport(
        blobs_checked=len(blobs),
        bytes_checked=total,
        corrupt=found,
        seconds=round(time.perf_counter() - started, 3),
    )


def _batches(blobs: list[StoredFile]) -> Iterator[list[StoredFile]]:
    """Small blobs a batch at a time: one trip to a thread costs more than hashing 4 KiB."""
    batch: list[StoredFile] = []
    size = 0
    for blob in blobs:
        batch.append(blob)
        size += blob.size
        if size >= BATCH_BYTES or len(batch) >= BATCH_FILES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _verify_batch(batch: list[StoredFile]) -> list[Corrupt]:
    found = []
    buffer = bytearray(CHUNK)
    for blob in batch:
        assert blob.digest is not None  # iter_blobs yields blobs only
        if (problem := verify_blob(blob.path, blob.digest, buffer)) is not None:
            found.append(problem)
    return found


def name_referrers(report: FsckReport, references: References) -> None:
    """Fill in, for each corrupt blob, what references it and what makes it again."""
    report.referrers_known = True
    for corrupt in report.corrupt:
        if corrupt.digest is not None:
            corrupt.referrers, corrupt.remedies = _described(references, corrupt.digest)


def find_missing(store: ContentStore, report: FsckReport, references: References) -> None:
    """List the referenced blobs the store lacks (one stat each); blocking."""
    report.missing = []
    for digest in sorted(references):
        if is_digest(digest) and store.path(digest).is_file():
            continue
        referrers, remedies = _described(references, digest)
        report.missing.append(Missing(digest=digest, referrers=referrers, remedies=remedies))


def _described(references: References, digest: str) -> tuple[list[str], list[str]]:
    referrers = references.of(digest)
    return [str(r) for r in referrers], sorted({r.remedy() for r in referrers})


def quarantine_all(store: ContentStore, report: FsckReport) -> None:
    """Move every corrupt file to the quarantine; blocking, so run it in a thread."""
    for corrupt in report.corrupt:
        path = Path(corrupt.path)
        if not (path.exists() or path.is_symlink()):
            continue  # removed since (by gc): nothing left to move
        corrupt.quarantined = str(quarantine(store, path))
        report.quarantined += 1
