"""One `wolfpack up` per DATA folder. Two would run two nats-servers on one JetStream store
(nats-server does not lock it: both start, and the store is corrupted) and two sets of
services writing the same host files. up holds an exclusive flock on DATA/run/up.lock for its
life; the kernel drops it however up ends, so a killed up leaves no stale lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from libs.common.service import StartupFailed

LOCK_FILE: Final = "up.lock"


@contextlib.contextmanager
def only_up(run_dir: Path) -> Iterator[None]:
    """Hold DATA/run/up.lock for the block; StartupFailed naming the other up if it is held."""
    path = run_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise StartupFailed(
                f"another wolfpack up (pid {holder}) already runs on {run_dir.parent}; "
                "stop it first (two would share one NATS store)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock
