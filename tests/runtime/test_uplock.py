"""One `wolfpack up` per DATA folder, and a new one waits for what a killed one left running."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from libs.common.service import StartupFailed
from libs.runtime.uplock import leftovers_gone, only_up


def test_the_lock_is_one_holder_at_a_time(tmp_path: Path) -> None:
    held = rf"another wolfpack up \(pid {os.getpid()}\)"
    with only_up(tmp_path), pytest.raises(StartupFailed, match=held), only_up(tmp_path):
        pass
    with only_up(tmp_path):  # released with the block
        pass


async def test_a_leftover_child_is_waited_for_and_a_stranger_is_not(tmp_path: Path) -> None:
    run = tmp_path / "data" / "run"
    run.mkdir(parents=True)
    # A process naming the DATA folder on its command line, as up's children do.
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import time; time.sleep(60)", "--data", str(tmp_path / "data")
    )
    try:
        (run / "registry.pid").write_text(f"{child.pid}\n")
        (run / "bootd.pid").write_text(f"{os.getpid()}\n")  # a stranger: pid reused
        (run / "tftpd.pid").write_text("not a pid\n")
        with pytest.raises(StartupFailed, match=rf"still run: registry \(pid {child.pid}\)"):
            await leftovers_gone(run, within=0.2)
        waiting = asyncio.ensure_future(leftovers_gone(run, within=30))
        # Queued after the task's first step: it is waiting on the process when it ends.
        asyncio.get_running_loop().call_soon(child.terminate)
        assert await waiting == [f"registry (pid {child.pid})"]
    finally:
        if child.returncode is None:
            child.kill()
        await child.wait()
    assert await leftovers_gone(run) == []
