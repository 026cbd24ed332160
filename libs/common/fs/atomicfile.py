"""Replace a file whole: a reader sees the old content or the new, never half of it; and make a
rename durable."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, content: bytes, mode: int = 0o600) -> None:
    """Write `content` to a temporary file beside `path` (never readable by others unless
    `mode` says so), sync it, and rename it over `path`."""
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
            if mode != 0o600:
                os.fchmod(out.fileno(), mode)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable: the directory entry must reach the disk too."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
