"""One `wolfpack up` per DATA folder. Two would run two nats-servers on one JetStream store
(nats-server does not lock it: both start, and the store is corrupted) and two sets of
services writing the same host files. up holds an exclusive flock on DATA/run/up.lock for its
life; the kernel drops it however up ends, so a killed up leaves no stale lock.

A killed up's children are still ending when its lock is gone (the kernel sent them SIGTERM):
the next up ends the processes its pid files name before it starts its own, waiting for them
and killing those that do not stop in time, as systemd does at the end of TimeoutStopSec.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from libs.common.pidwait import pidfd_ended
from libs.common.service import StartupFailed

LOCK_FILE: Final = "up.lock"
# A service gives open requests 5 s, then 5 s to each shutdown step (libs.common.service).
LEFTOVERS_WITHIN: Final = 20.0
KILLED_WITHIN: Final = 5.0


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


@dataclass(frozen=True)
class Leftovers:
    """An earlier up's processes the new one found still running, by how they ended."""

    ended: list[str] = field(default_factory=list)
    killed: list[str] = field(default_factory=list)


async def stop_leftovers(
    run_dir: Path, within: float = LEFTOVERS_WITHIN, killed_within: float = KILLED_WITHIN
) -> Leftovers:
    """End the processes an earlier up's pid files name, as a service manager would: SIGTERM
    (the kernel sent one already if up died, but an older up's children may not have had it),
    then SIGKILL to those still running after `within` seconds. StartupFailed naming any still
    running `killed_within` seconds after that (stuck in the kernel)."""
    # A child of up names the DATA folder on its command line (--data, -sd, --conf-file): a
    # pid file whose pid now runs something else is stale.
    folder = run_dir.parent
    marks = {str(folder).encode(), str(folder.resolve()).encode()}
    found: dict[str, int] = {}  # "name (pid N)" -> pidfd
    try:
        for name, pid in _pid_files(run_dir):
            with contextlib.suppress(ProcessLookupError):
                fd = os.pidfd_open(pid)
                # Checked after the pidfd pins the process: a signal cannot reach a newcomer.
                if _ours(pid, marks):
                    found[f"{name} (pid {pid})"] = fd
                else:
                    os.close(fd)
        if not found:
            return Leftovers()
        _signal_all(found.values(), signal.SIGTERM)
        stubborn = await _still_running(found, within)
        _signal_all((found[n] for n in stubborn), signal.SIGKILL)
        stuck = await _still_running({n: found[n] for n in stubborn}, killed_within)
        if stuck:
            raise StartupFailed(
                f"processes of an earlier wolfpack up on {folder} survive SIGKILL: "
                f"{', '.join(stuck)}; see what they wait for (ps -o stat,wchan)"
            )
        return Leftovers(ended=[n for n in found if n not in stubborn], killed=stubborn)
    finally:
        for fd in found.values():
            os.close(fd)


def _signal_all(pidfds: Iterable[int], sig: int) -> None:
    for fd in pidfds:
        with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
            signal.pidfd_send_signal(fd, sig)


async def _still_running(pidfds: dict[str, int], within: float) -> list[str]:
    """Those of `pidfds` that have not ended after `within` seconds."""
    if not pidfds:
        return []
    waits = {name: asyncio.ensure_future(pidfd_ended(fd)) for name, fd in pidfds.items()}
    _, pending = await asyncio.wait(waits.values(), timeout=within)
    for wait in pending:
        wait.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return [name for name, wait in waits.items() if wait in pending]


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
