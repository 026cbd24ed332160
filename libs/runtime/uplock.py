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
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from libs.common.proc.pidwait import pidfd_ended
from libs.runtime.host import StartupFailed

LOCK_FILE: Final = "up.lock"
# A service gives open requests 5 s, then 5 s to each shutdown step (libs/runtime/host.py);
# a worker thread it waits for at exit is not bounded. Killing one mid-step is safe: every
# write is staged and renamed, as it must be for the OOM killer.
LEFTOVERS_WITHIN: Final = 20.0
KILLED_WITHIN: Final = 5.0
# A pid file is written just after its process starts; the clocks compared round to ticks
# and a clock step since boot shifts them a little.
START_SLACK: Final = 2.0


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
    running `killed_within` seconds after that (stuck in the kernel), or one we may not
    signal (started by another user)."""
    folder = run_dir.parent
    folders = {os.fsencode(folder), os.fsencode(folder.resolve())}
    found: dict[str, int] = {}  # "name (pid N)" -> pidfd
    try:
        for name, pid, written in _pid_files(run_dir):
            try:
                fd = os.pidfd_open(pid)
            except ProcessLookupError:
                continue
            try:
                # Checked after the pidfd pins the process: a signal cannot reach a newcomer.
                mine = _ours(pid, folders, written)
            except BaseException:
                os.close(fd)
                raise
            if mine:
                found[f"{name} (pid {pid})"] = fd
            else:
                os.close(fd)
        if not found:
            return Leftovers()
        _signal_all(found, signal.SIGTERM, folder)
        stubborn = await _still_running(found, within)
        _signal_all({n: found[n] for n in stubborn}, signal.SIGKILL, folder)
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


def _signal_all(pidfds: dict[str, int], sig: int, folder: Path) -> None:
    for name, fd in pidfds.items():
        try:
            signal.pidfd_send_signal(fd, sig)
        except ProcessLookupError:
            continue  # it ended meanwhile
        except PermissionError:
            raise StartupFailed(
                f"{name}, left running by an earlier wolfpack up on {folder}, belongs to "
                "another user: stop it as that user (or as root) first"
            ) from None


async def _still_running(pidfds: dict[str, int], within: float) -> list[str]:
    """Those of `pidfds` that have not ended after `within` seconds."""
    if not pidfds:
        return []
    waits = {name: asyncio.ensure_future(pidfd_ended(fd)) for name, fd in pidfds.items()}
    try:
        _, pending = await asyncio.wait(waits.values(), timeout=within)
    finally:
        # Also when we are cancelled: no reader may outlive the fds the caller closes.
        for wait in waits.values():
            wait.cancel()
        await asyncio.gather(*waits.values(), return_exceptions=True)
    return [name for name, wait in waits.items() if wait in pending]


def _pid_files(run_dir: Path) -> Iterator[tuple[str, int, float]]:
    """(name, pid, when the file was written) of each pid file that names a pid."""
    for path in run_dir.glob("*.pid"):
        try:
            pid, written = int(path.read_bytes()), path.stat().st_mtime
        except (OSError, ValueError):
            continue
        if pid > 0:
            yield path.stem, pid, written


def _ours(pid: int, folders: set[bytes], written: float) -> bool:
    """`pid` is the process its pid file was written for, and one of up's: it runs (not a
    zombie), started before the file was written (a reused pid starts after the first owner
    died), and has the DATA folder, or a path in it, as an argument (--data, -sd, -c,
    --conf-file=)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, IndexError):
        return False
    if pid in (os.getpid(), os.getppid()) or fields[0] == b"Z":
        return False
    if _started_at(int(fields[19])) > written + START_SLACK:
        return False
    return any(_names_folder(arg, folders) for arg in cmdline.split(b"\0"))


def _started_at(ticks_after_boot: int) -> float:
    """Wall-clock time of a process start given in clock ticks after boot (/proc/PID/stat)."""
    booted = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
    return booted + ticks_after_boot / os.sysconf("SC_CLK_TCK")


def _names_folder(arg: bytes, folders: set[bytes]) -> bool:
    value = arg.split(b"=", 1)[-1] if arg.startswith(b"-") else arg
    return any(value == f or value.startswith(f + b"/") for f in folders)
