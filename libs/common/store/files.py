"""The store's files as `wolfpack gc` and `wolfpack fsck` see them: blobs with their size and
age, temporary files, strays (anything else under the blob folders), and the quarantine.

Listing uses scandir (one lstat a file) and never follows links: a link under the blob
folders is a stray, not a blob.
"""

from __future__ import annotations

import itertools
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final, NamedTuple

from libs.common.errors import Invalid
from libs.common.fs.atomicfile import fsync_dir
from libs.common.store.cas import ALGORITHM, TEMP_PREFIX, ContentStore, is_digest, last_stored

# Where `wolfpack fsck --quarantine` moves corrupt blobs: beside the blobs, never served.
QUARANTINE: Final = "quarantine"

# (phase, done, total or None while unknown): how far a long walk over the store is.
Progress = Callable[[str, int, int | None], None]


def no_progress(phase: str, done: int, total: int | None) -> None:
    """The Progress callback that tells no one."""


class StoredFile(NamedTuple):
    """A file of the store. `digest`: None for a temporary file. `stored_at`: when a blob was
    last written or stored again (cas.last_stored); a temporary file's mtime."""

    path: Path
    digest: str | None
    size: int
    stored_at: float


def blobs_dir(store: ContentStore) -> Path:
    return store.root / ALGORITHM


def quarantine_dir(store: ContentStore) -> Path:
    return store.root / QUARANTINE


def iter_blobs(store: ContentStore) -> Iterator[StoredFile]:
    """Every blob in its right place, folder by folder in name order."""
    for folder in _folders(blobs_dir(store)):
        for entry in _scan(folder.path):
            if is_digest(entry.name) and entry.name[:2] == folder.name:
                found = _lstat(entry)
                if found is not None and stat.S_ISREG(found.st_mode):
                    path = Path(entry.path)
                    yield StoredFile(path, entry.name, found.st_size, last_stored(found))


def iter_temps(store: ContentStore) -> Iterator[StoredFile]:
    """Temporary files: in the blob folders, and one level up (writes without a known digest
    stage there)."""
    root = blobs_dir(store)
    for folder in [root, *(Path(entry.path) for entry in _folders(root))]:
        for entry in _scan(folder):
            if entry.name.startswith(TEMP_PREFIX) and (found := _lstat(entry)) is not None:
                yield StoredFile(Path(entry.path), None, found.st_size, found.st_mtime)


def iter_strays(store: ContentStore) -> Iterator[Path]:
    """What is under the blob folders but neither a blob nor a temporary file: a file in the
    wrong folder or under a wrong name, a link, a folder where a blob should be."""
    for entry in _scan(blobs_dir(store)):
        if entry.name.startswith(TEMP_PREFIX):
            continue
        if not _is_folder(entry):
            yield Path(entry.path)
            continue
        for inner in _scan(entry.path):
            if inner.name.startswith(TEMP_PREFIX):
                continue
            placed = is_digest(inner.name) and inner.name[:2] == entry.name
            if not placed or not inner.is_file(follow_symlinks=False):
                yield Path(inner.path)


def remove_temp(temp: Path, cutoff: float) -> int | None:
    """Remove temporary file `temp` if it was last written before `cutoff`: the bytes freed,
    None if it is kept (a writer may still be at it) or gone already."""
    if not temp.name.startswith(TEMP_PREFIX):
        raise Invalid(f"{temp} is not a temporary file of the store", field="path")
    try:
        found = temp.lstat()
        if found.st_mtime >= cutoff:
            return None
        temp.unlink()
    except FileNotFoundError:
        return None
    return found.st_size


def quarantine(store: ContentStore, path: Path) -> Path:
    """Move a file of the store (a corrupt blob, a stray) to `ROOT/quarantine/`, never deleting
    it; returns where it went (`NAME.1`, `NAME.2`, ... if that name is taken already)."""
    path = Path(path)
    if blobs_dir(store) not in path.parents:
        raise Invalid(f"{path} is not in the store {blobs_dir(store)}", field="path")
    into = quarantine_dir(store)
    into.mkdir(mode=0o700, exist_ok=True)
    folder = path.is_dir() and not path.is_symlink()
    for number in itertools.count():
        target = into / (f"{path.name}.{number}" if number else path.name)
        if folder:
            if target.exists() or target.is_symlink():
                continue
            os.rename(path, target)  # only fsck writes here: nobody races for the name
            break
        try:
            # A link, then the unlink: an earlier quarantined file is never replaced.
            os.link(path, target, follow_symlinks=False)
        except FileExistsError:
            continue
        path.unlink()
        break
    fsync_dir(into)
    return target


def _folders(root: Path) -> Iterator[os.DirEntry[str]]:
    """The `<2 hex>` folders, in name order."""
    for entry in _scan(root):
        if _is_folder(entry):
            yield entry


def _is_folder(entry: os.DirEntry[str]) -> bool:
    return len(entry.name) == 2 and entry.is_dir(follow_symlinks=False)


def _scan(folder: str | Path) -> list[os.DirEntry[str]]:
    """A folder's entries in name order; none if it is not there (any more)."""
    try:
        with os.scandir(folder) as entries:
            return sorted(entries, key=lambda entry: entry.name)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _lstat(entry: os.DirEntry[str]) -> os.stat_result | None:
    try:
        return entry.stat(follow_symlinks=False)
    except FileNotFoundError:
        return None
