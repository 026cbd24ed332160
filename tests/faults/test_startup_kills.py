"""Kills while `wolfpack up` is still starting. Each service and nats-server is SIGKILLed once,
at a random moment soon after it was started: while it creates its buckets, streams and
consumers, while overlayd renders every node at start. First on an empty DATA folder, then on
one that already holds nodes. up must come up by itself, and the stack must be whole: KV
`boot` is a fresh render of the registry, and a new node goes through overlayd to KV and is
known to bootd.

WOLFPACK_TEST_SEED=n replays one run's moments (tests/seeds.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx
import pytest

from tests.faults.chaos import Killer, Ledger, Retrying, converged, served_script, stack_processes
from tests.seeds import seeded_random
from tests.stack import UpStack, start_up

NODES: Final = 30
# A service is healthy within about a second of its start here: most kills land before that.
KILL_WITHIN: Final = 1.5
WHOLE_WITHIN: Final = 90.0


@dataclass
class StartupKill:
    process: str
    pid: int
    after: float  # seconds after its pid file appeared


class StartupKiller:
    """A thread per process: wait for its first pid file, pause a random moment, SIGKILL it.
    Threads, because start_up() blocks the test's event loop while up starts."""

    def __init__(self, run_dir: Path, rng: random.Random) -> None:
        self.run_dir = run_dir
        self.moments = {p: rng.uniform(0.0, KILL_WITHIN) for p in stack_processes()}
        self.kills: list[StartupKill] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._kill_once, args=(p,), daemon=True)
            for p in stack_processes()
        ]

    def __enter__(self) -> StartupKiller:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        # Up may be healthy before a process's moment has come: let every kill happen (a
        # thread whose pid file never came is stopped after that wait), unless up failed.
        deadline = time.monotonic() + KILL_WITHIN + WHOLE_WITHIN
        for thread in self._threads if exc_type is None else []:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _kill_once(self, process: str) -> None:
        pid_file = self.run_dir / f"{process}.pid"
        # No event says "up wrote a pid file": look every 5 ms.
        while not self._stop.wait(0.005):
            try:
                pid = int(pid_file.read_text())
            except (FileNotFoundError, ValueError):
                continue
            # The random moment is the point of this pause.
            if self._stop.wait(self.moments[process]):
                return
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                self.errors.append(f"{process} pid {pid} was gone before its kill")
                return
            self.kills.append(StartupKill(process, pid, self.moments[process]))
            return


def node_body(number: int, *args: str) -> dict[str, object]:
    device = {"hwaddr": f"52:54:00:fb:00:{number:02x}", "ipaddr": f"10.7.0.{number + 1}"}
    return {
        "profiles": ["default"],
        "kernel": {"args": list(args)},
        "network_devices": {"default": device},
    }


async def put_node(api: Retrying, up: UpStack, number: int, *args: str) -> None:
    url = f"{up.url('registry')}/api/v1/nodes/s{number:02d}"
    await api.until("PUT", url, json=node_body(number, *args))


@contextlib.asynccontextmanager
async def http(up: UpStack) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {up.token}"}
    async with httpx.AsyncClient(headers=headers, timeout=30.0, trust_env=False) as client:
        yield client


@pytest.mark.parametrize("folder", ["empty", "with nodes"])
async def test_up_comes_up_whole_when_every_process_dies_while_starting(
    folder: str, tmp_path: Path
) -> None:
    rng = seeded_random()
    data = tmp_path / "data"
    names = {f"s{n:02d}" for n in range(NODES)} if folder == "with nodes" else set()
    if names:
        with start_up(data) as first:
            async with http(first) as client:
                api = Retrying(client, Ledger())
                for number in range(NODES):
                    await put_node(api, first, number)
    # A pid file left behind would have the killer shoot at a stranger's process.
    assert not list((data / "run").glob("*.pid"))

    with contextlib.ExitStack() as stack:
        with StartupKiller(data / "run", rng) as killer:
            # Blocks until every service answered /healthz once, some of them perhaps
            # before their kill.
            up = stack.enter_context(start_up(data))
        assert not killer.errors, killer.errors
        assert sorted(k.process for k in killer.kills) == sorted(stack_processes())
        for kill in killer.kills:
            print(f"killed {kill.process} pid {kill.pid} {kill.after:.2f}s after its start")

        restarts = Killer(up)
        await asyncio.gather(*(restarts.returned(k.process, k.pid) for k in killer.kills))

        async with http(up) as client:
            manifests = await converged(up, tmp_path / "fresh", WHOLE_WITHIN)
            assert set(manifests) == names
            api = Retrying(client, Ledger())
            await put_node(api, up, 99, "after-the-kills")
            manifests = await converged(up, tmp_path / "fresh", WHOLE_WITHIN)
            assert "after-the-kills" in manifests["s99"].kernel_args
            # bootd follows too: it knows the new node by its MAC (it has no image to boot).
            script = f"{up.url('bootd')}/ipxe/52:54:00:fb:00:{99:02x}"
            await served_script(client, script, "node s99 ", WHOLE_WITHIN)
