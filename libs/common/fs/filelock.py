"""An advisory lock on a file beside what it guards: writers hold it exclusive, readers shared.

flock works between processes on one host and between containers sharing a local volume, not
between NFS clients.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def file_lock(path: Path, exclusive: bool = True) -> Iterator[None]:
    """Hold a flock on `path` (made, mode 0600, if missing) for the block."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # closing releases the lock
