"""One `wolfpack up` per DATA folder. Two would run two nats-servers on one JetStream store
(nats-server does not lock it: both start, and the store is corrupted) and two sets of
services writing the same host files. up holds an exclusive flock on DATA/run/up.lock for its
life; the kernel drops it however up ends, so a killed up leaves no stale lock.

A killed up's children are still ending when its lock is gone (the kernel sent them SIGTERM):
the next up waits for the processes its pid files name before it starts its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from libs.common.pidwait import process_ended
from libs.common.service import StartupFailed

LOCK_FILE: Final = "up.lock"
LEFTOVERS_WITHIN: Final = 30.0


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


async def leftovers_gone(run_dir: Path, within: float = LEFTOVERS_WITHIN) -> list[str]:
    """Wait for the processes an earlier up's pid files name to end; what was waited for.
    StartupFailed naming those still running after `within` seconds."""
    # A child of up names the DATA folder on its command line (--data, -sd, --conf-file): a
    # pid file whose pid now runs something else is stale.
    folder = run_dir.parent
    marks = {str(folder).encode(), str(folder.resolve()).encode()}
    left = {name: pid for name, pid in _pid_files(run_dir) if _ours(pid, marks)}
    if not left:
        return []
    try:
        async with asyncio.timeout(within):
            await asyncio.gather(*(process_ended(pid) for pid in left.values()))
    except TimeoutError:
        still = ", ".join(f"{n} (pid {p})" for n, p in left.items() if _ours(p, marks))
        raise StartupFailed(
            f"processes of an earlier wolfpack up on {run_dir.parent} still run: {still}; "
            "stop them first"
        ) from None
    return [f"{name} (pid {pid})" for name, pid in left.items()]


def _pid_files(run_dir: Path) -> Iterator[tuple[str, int]]:
    for path in run_dir.glob("*.pid"):
        try:
            yield path.stem, int(path.read_text())
        except (OSError, ValueError):
            continue


def _ours(pid: int, marks: set[bytes]) -> bool:
    """`pid` runs (not a zombie) with one of `marks` on its command line."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, IndexError):
        return False
    return state != "Z" and any(mark in cmdline for mark in marks)
