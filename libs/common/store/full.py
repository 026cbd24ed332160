"""A full disk under the store: one error that names the store, and how much room is left.

ENOSPC (the file system is full) and EDQUOT (the user's quota is) mean the same to wolfpack:
nothing more can be stored until someone frees space. Every store write raises StoreFull for
either; it stays an OSError with the original errno, so callers that test errno still work.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Final

FULL_ERRNOS: Final = frozenset({errno.ENOSPC, errno.EDQUOT})
HINT: Final = "free space there (`wolfpack gc` removes unused blobs) or give it a bigger disk"


class StoreFull(OSError):
    """A write to the store at `root` found no space (ENOSPC) or no quota left (EDQUOT)."""

    def __init__(self, code: int, root: Path) -> None:
        why = "no space left" if code == errno.ENOSPC else "no space left (disk quota exceeded)"
        super().__init__(code, f"{why} on the device of the store {root}")
        self.code = code
        self.root = Path(root)
        # Free bytes when the write failed: whoever waits for space compares with this.
        self.free = free_bytes(self.root)

    def __reduce__(self) -> tuple[type[StoreFull], tuple[int, Path]]:
        return type(self), (self.code, self.root)  # copies and pickles rebuild it whole

    @property
    def advice(self) -> str:
        """The message with what to do about it."""
        return f"{self.strerror}; {HINT}"


def is_full(exc: BaseException) -> bool:
    """Out of space or quota, directly or as the cause of a wrapped error."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in FULL_ERRNOS:
            return True
        seen = seen.__cause__
    return False


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the file system holding `path` (its
    nearest existing folder); 0 if none can be read."""
    for folder in (path, *path.parents):
        try:
            found = os.statvfs(folder)
        except OSError:
            continue
        return found.f_bavail * found.f_frsize
    return 0
