"""One `wolfpack up` per DATA folder, and a new one stops what a killed one left running."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from libs.common.service import StartupFailed
from libs.runtime.uplock import Leftovers, only_up, stop_leftovers


def test_the_lock_is_one_holder_at_a_time(tmp_path: Path) -> None:
    held = rf"another wolfpack up \(pid {os.getpid()}\)"
    with only_up(tmp_path), pytest.raises(StartupFailed, match=held), only_up(tmp_path):
        pass
    with only_up(tmp_path):  # released with the block
        pass


async def _leftover(data: Path, code: str) -> asyncio.subprocess.Process:
    """A process naming the DATA folder on its command line, as up's children do; it says
    "ready" once its signal handling is set up."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, "--data", str(data), stdout=asyncio.subprocess.PIPE
    )
    assert child.stdout is not None
    assert await child.stdout.readline() == b"ready\n"
    return child


STOPS_ON_SIGTERM = "import time; print('ready', flush=True); time.sleep(60)"
IGNORES_SIGTERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ready', flush=True); time.sleep(60)"
)


async def test_leftovers_are_stopped_the_stubborn_killed_and_a_stranger_left_alone(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    run = data / "run"
    run.mkdir(parents=True)
    polite = await _leftover(data, STOPS_ON_SIGTERM)
    stubborn = await _leftover(data, IGNORES_SIGTERM)
    stranger = await asyncio.create_subprocess_exec(
        sys.executable, "-c", STOPS_ON_SIGTERM, stdout=asyncio.subprocess.DEVNULL
    )
    try:
        (run / "registry.pid").write_text(f"{polite.pid}\n")
        (run / "overlayd.pid").write_text(f"{stubborn.pid}\n")
        (run / "bootd.pid").write_text(f"{stranger.pid}\n")  # pid reused by someone else
        (run / "tftpd.pid").write_text("not a pid\n")
        found = await stop_leftovers(run, within=0.5)
        assert found.ended == [f"registry (pid {polite.pid})"]
        assert found.killed == [f"overlayd (pid {stubborn.pid})"]
        assert await polite.wait() == -signal.SIGTERM
        assert await stubborn.wait() == -signal.SIGKILL
        assert stranger.returncode is None
    finally:
        for child in (polite, stubborn, stranger):
            if child.returncode is None:
                child.kill()
            await child.wait()
    assert await stop_leftovers(run) == Leftovers()
