"""A process supervisor in plain asyncio: start children, pass on their output, restart the dead.

Each child runs in its own session, so a Ctrl+C at the terminal reaches only the supervisor,
which then stops the children itself; a child is also told to die with its parent (Linux
PR_SET_PDEATHSIG) so a killed supervisor leaves no orphans behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

import httpx
import msgspec

from libs.common.logs import VERBATIM
from libs.common.proc.deathsig import die_with_parent
from libs.common.security.tls import client_context

LINE_LIMIT: Final = 1024 * 1024
LEVEL_WORDS: Final = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}


class Child(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    argv: list[str]
    # Answers 200 once the child is ready; None: ready as soon as it runs.
    health_url: str | None = None
    env: dict[str, str] | None = None


class Backoff(msgspec.Struct, frozen=True, kw_only=True):
    """Restart delay: `initial`, doubling up to `maximum`; back to `initial` after a child
    stayed up `reset_after` seconds."""

    initial: float = 0.5
    maximum: float = 30.0
    reset_after: float = 30.0


class ChildExit(msgspec.Struct, frozen=True, kw_only=True):
    """A child died on its own; it will be started again after `delay` seconds."""

    name: str
    returncode: int
    uptime: float
    delay: float


class Supervisor:
    def __init__(
        self,
        children: Sequence[Child],
        *,
        run_dir: Path | None = None,
        backoff: Backoff | None = None,
        log: logging.Logger | None = None,
        on_exit: Callable[[ChildExit], None] | None = None,
        stop_timeout: float = 10.0,
        tls_ca: Path | None = None,
    ) -> None:
        self.children = list(children)
        self.run_dir = run_dir
        self.backoff = backoff or Backoff()
        self.log = log or logging.getLogger("wolfpack.up.supervisor")
        self.on_exit = on_exit
        self.stop_timeout = stop_timeout
        # Health URLs that are https are checked against this CA (`wolfpack up --tls`).
        self.tls_ca = tls_ca
        self._procs: dict[str, asyncio.subprocess.Process] = {}
        self._watchers: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._pre_exec = die_with_parent()
        self._ready: set[str] = set()

    def pid(self, name: str) -> int | None:
        proc = self._procs.get(name)
        return proc.pid if proc else None

    async def start(self) -> None:
        """Start every child; each is then watched and restarted until `stop()`."""
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        for child in self.children:
            proc = await self._spawn(child)
            self._watchers.append(asyncio.create_task(self._watch(child, proc)))

    async def stop(self) -> None:
        """SIGTERM every child, SIGKILL those still there after `stop_timeout`, wait for all."""
        self._stopping.set()
        await asyncio.gather(*self._watchers)
        self._watchers.clear()

    def not_ready(self) -> list[str]:
        return [c.name for c in self.children if c.health_url and c.name not in self._ready]

    async def wait_ready(self) -> None:
        """Poll each child's health URL until all have answered 200 once (bound it with
        `asyncio.timeout`; `not_ready()` then names the laggards)."""
        # trust_env off: a proxy from the environment has no business with 127.0.0.1.
        verify = client_context(self.tls_ca) if self.tls_ca is not None else True
        async with httpx.AsyncClient(timeout=2.0, trust_env=False, verify=verify) as client:
            while pending := self.not_ready():
                for name in pending:
                    url = next(c.health_url for c in self.children if c.name == name)
                    assert url is not None
                    with contextlib.suppress(httpx.HTTPError):
                        if (await client.get(url)).status_code == 200:
                            self._ready.add(name)
                            self.log.info("%s ready", name)
                if self.not_ready():
                    await asyncio.sleep(0.2)
        self.log.info("all services ready")

    async def _spawn(self, child: Child) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            *child.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=child.env,
            start_new_session=True,
            preexec_fn=self._pre_exec,
            limit=LINE_LIMIT,
        )
        self._procs[child.name] = proc
        if self.run_dir is not None:
            (self.run_dir / f"{child.name}.pid").write_text(f"{proc.pid}\n")
        self.log.info("started %s (pid %d)", child.name, proc.pid)
        return proc

    async def _watch(self, child: Child, proc: asyncio.subprocess.Process) -> None:
        loop = asyncio.get_running_loop()
        delay = self.backoff.initial
        while True:
            started = loop.time()
            returncode = await self._run(child, proc)
            if self._stopping.is_set():
                return
            uptime = loop.time() - started
            if uptime >= self.backoff.reset_after:
                delay = self.backoff.initial
            self.log.warning(
                "%s exited with code %d after %.1fs; restarting in %.1fs",
                child.name,
                returncode,
                uptime,
                delay,
            )
            if self.on_exit is not None:
                self.on_exit(
                    ChildExit(name=child.name, returncode=returncode, uptime=uptime, delay=delay)
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            if self._stopping.is_set():
                return
            delay = min(delay * 2, self.backoff.maximum)
            proc = await self._spawn(child)

    async def _run(self, child: Child, proc: asyncio.subprocess.Process) -> int:
        """Pass on the child's output until it exits (or stop it, if we are stopping)."""
        assert proc.stdout is not None
        pump = asyncio.create_task(self._pump(child.name, proc.stdout))
        exited = asyncio.create_task(proc.wait())
        stopping = asyncio.create_task(self._stopping.wait())
        await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not exited.done():
            await self._terminate(child.name, proc)
        returncode = await exited
        # The child is gone; a grandchild still holding the pipe must not hold us up.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(pump, 5.0)
        self._procs.pop(child.name, None)
        if self.run_dir is not None:
            (self.run_dir / f"{child.name}.pid").unlink(missing_ok=True)
        return returncode

    async def _terminate(self, name: str, proc: asyncio.subprocess.Process) -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), self.stop_timeout)
        except TimeoutError:
            self.log.warning("%s ignored SIGTERM for %gs; killing it", name, self.stop_timeout)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

    async def _pump(self, name: str, stream: asyncio.StreamReader) -> None:
        """Re-log each line as `[name] line`, at the level the child's line names."""
        level = logging.INFO
        while True:
            try:
                raw = await stream.readline()
            except ValueError:
                self.log.warning("[%s] (a line over %d bytes was dropped)", name, LINE_LIMIT)
                continue
            if not raw:
                return
            line = raw.decode(errors="replace").rstrip()
            first = line.split(" ", 1)[0]
            # Lines without a level word (traceback lines) keep the level of the line before.
            if first in LEVEL_WORDS:
                level = logging.getLevelName(first)
            self.log.log(level, "[%s] %s", name, line, extra={VERBATIM: True})
