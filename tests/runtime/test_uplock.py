"""One `wolfpack up` per DATA folder, and a new one stops what a killed one left running."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

import pytest

from libs.runtime.host import StartupFailed
from libs.runtime.uplock import Leftovers, only_up, stop_leftovers


def test_the_lock_is_one_holder_at_a_time(tmp_path: Path) -> None:
    held = rf"another wolfpack up \(pid {os.getpid()}\)"
    with only_up(tmp_path), pytest.raises(StartupFailed, match=held), only_up(tmp_path):
        pass
    with only_up(tmp_path):  # released with the block
        pass


async def _leftover(folder: Path, code: str) -> asyncio.subprocess.Process:
    """A process with `folder` as an argument, as up's children have DATA; it says "ready"
    once its signal handling is set up."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        "--data",
        str(folder),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    assert await child.stdout.readline() == b"ready\n"
    return child


STOPS_ON_SIGTERM = "import time; print('ready', flush=True); time.sleep(60)"
IGNORES_SIGTERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ready', flush=True); time.sleep(60)"
)
# Answers each line it reads: an answer proves it outlived any signal sent before the line.
ANSWERS = "import sys; print('ready', flush=True); [print('alive', flush=True) for _ in sys.stdin]"
AN_HOUR = 3600


async def _alive(child: asyncio.subprocess.Process) -> bool:
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write(b"?\n")
    with contextlib.suppress(ConnectionError):
        await child.stdin.drain()
    return await child.stdout.readline() == b"alive\n"


async def test_leftovers_are_stopped_the_stubborn_killed_and_strangers_left_alone(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    run = data / "run"
    run.mkdir(parents=True)
    polite = await _leftover(data, STOPS_ON_SIGTERM)
    stubborn = await _leftover(data, IGNORES_SIGTERM)
    # Pids reused by others: one naming another folder that begins like DATA, one naming
    # DATA itself but started long after its pid file was written (its first owner is gone).
    other_folder = await _leftover(tmp_path / "data-old", ANSWERS)
    newcomer = await _leftover(data, ANSWERS)
    children = (polite, stubborn, other_folder, newcomer)
    try:
        (run / "registry.pid").write_text(f"{polite.pid}\n")
        (run / "overlayd.pid").write_text(f"{stubborn.pid}\n")
        (run / "bootd.pid").write_text(f"{other_folder.pid}\n")
        (run / "builder.pid").write_text(f"{newcomer.pid}\n")
        written_before = (run / "builder.pid").stat().st_mtime - AN_HOUR
        os.utime(run / "builder.pid", (written_before, written_before))
        (run / "tftpd.pid").write_text("not a pid\n")
        (run / "dnsmasq.pid").write_text("0\n")
        found = await stop_leftovers(run, within=0.5)
        assert found.ended == [f"registry (pid {polite.pid})"]
        assert found.killed == [f"overlayd (pid {stubborn.pid})"]
        assert await polite.wait() == -signal.SIGTERM
        assert await stubborn.wait() == -signal.SIGKILL
        assert await _alive(other_folder) and await _alive(newcomer)
    finally:
        for child in children:
            if child.returncode is None:
                child.kill()
            await child.wait()
    assert await stop_leftovers(run) == Leftovers()
