"""The host files (hostfiles.py) written into `DATA/host/`: atomically, only when their
content changed, then the reload command of each changed file if one is configured (once per
command, with a time limit; a failure is logged, not fatal).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from libs.common.fs.atomicfile import write_atomic
from libs.common.models.node import Node
from libs.common.models.site import TemplateSettings
from libs.common.site.config import HOST_DIR, OverlaydConfig
from libs.common.site.hostfiles import (
    DHCP_HOSTS,
    DNSMASQ,
    EXPORTS,
    HOSTS,
    render_dhcp_hosts,
    render_dnsmasq,
    render_host_files,
)
from libs.common.store.full import is_full
from libs.common.store.space_wait import SpaceWait

log = logging.getLogger("wolfpack.overlayd.host")


def write_atomically(path: Path, text: str) -> bool:
    """Replace `path` with `text` (temporary file, fsync, rename) unless it already holds it;
    returns whether it was written."""
    data = text.encode()
    with contextlib.suppress(FileNotFoundError):
        if path.read_bytes() == data:
            return False
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data, mode=0o644)
    return True


class HostConfig:
    """Writes the host files into DATA/host and runs the configured reload commands."""

    def __init__(self, data_dir: Path, settings: TemplateSettings, config: OverlaydConfig) -> None:
        # Absolute: dnsmasq.conf names its hosts file by this path.
        self.folder = Path(data_dir).resolve() / HOST_DIR
        self.settings = settings
        self.config = config
        self._reloads: Mapping[str, str | None] = {
            DNSMASQ: config.dhcp_reload,
            DHCP_HOSTS: config.dhcp_reload,
            HOSTS: config.hosts_reload,
            EXPORTS: config.exports_reload,
        }

    @property
    def dnsmasq_conf(self) -> Path:
        return self.folder / DNSMASQ

    def write_dhcp_config(self) -> bool:
        """Before dnsmasq starts: its main file (which names no node, so needs no registry),
        and an empty hosts file if there is none yet (overlayd fills it). True if changed."""
        main = render_dnsmasq(self.settings, self.config, self.folder)
        changed = write_atomically(self.dnsmasq_conf, main)
        if not (self.folder / DHCP_HOSTS).exists():
            changed = write_atomically(self.folder / DHCP_HOSTS, render_dhcp_hosts([])) or changed
        return changed

    async def update(self, nodes: Iterable[Node]) -> list[str]:
        """Render and write; returns the files that changed (their reloads have run)."""
        changed = await asyncio.to_thread(self._write, list(nodes))
        # dnsmasq.conf and dhcp-hosts share a reload: one SIGHUP re-reads what it can.
        done: set[str] = set()
        for name in changed:
            command = self._reloads.get(name)
            if command and command not in done:
                done.add(command)
                await run_reload(command, self.config.reload_timeout, name)
        return changed

    def _write(self, nodes: list[Node]) -> list[str]:
        # In a thread: 10,000 nodes' leases and hosts take a while to put into words.
        files = render_host_files(nodes, self.settings, self.config, self.folder)
        return [name for name, text in files.items() if write_atomically(self.folder / name, text)]


async def run_reload(command: str, limit: float, what: str) -> bool:
    """Run a reload command in a shell; a failure or a timeout is logged. True if it worked."""
    process = await asyncio.create_subprocess_shell(
        command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,  # its own process group: a timeout kills all of it
    )
    try:
        async with asyncio.timeout(limit):
            output, _ = await process.communicate()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        log.error("reload after %s changed: %r took over %gs; killed", what, command, limit)
        return False
    if process.returncode != 0:
        tail = output.decode(errors="replace").strip()[-500:]
        log.error(
            "reload after %s changed: %r exited with %s: %s",
            what,
            command,
            process.returncode,
            tail,
        )
        return False
    return True


class HostWriter:
    """The host files lag behind on purpose: a wave hands over the nodes as they are and goes
    on; the waves' loop has the newest set written, in the background, once changes pause
    (10,000 leases take long enough to slow down an edit's render if it ran beside it)."""

    def __init__(self, host: HostConfig) -> None:
        self.host = host
        self.since = 0.0  # when the set waiting was first handed over
        self._latest: list[Node] | None = None
        self._generation = -1
        self._writing: asyncio.Task[None] | None = None
        self._space = SpaceWait(host.folder)
        self._waiting = False

    @property
    def pending(self) -> bool:
        """A set waits to be written, or is being written."""
        return self._latest is not None or self._writing is not None

    @property
    def due(self) -> bool:
        """A set waits, and nothing is being written."""
        return self._latest is not None and self._writing is None

    def write_in_background(self, done: Callable[[], None]) -> None:
        """Write the newest set; `done()` once written."""

        def finished(task: asyncio.Task[None]) -> None:
            self._writing = None
            done()

        self._writing = asyncio.create_task(self.flush(), name="overlayd host files")
        self._writing.add_done_callback(finished)

    async def stop(self) -> None:
        if self._writing is not None:
            if self._waiting:
                self._writing.cancel()  # only waiting for space: nothing half written
            await asyncio.wait([self._writing])

    def schedule(self, nodes: Iterable[Node], generation: int) -> None:
        """The nodes at registry `generation` (nothing to do if that one was handed over)."""
        if generation == self._generation:
            return
        if self._latest is None:
            self.since = time.monotonic()
        self._generation = generation
        self._latest = list(nodes)

    async def flush(self) -> None:
        nodes, self._latest = self._latest, None
        if nodes is None:
            return
        try:
            changed = await self.host.update(nodes)
        except OSError as err:
            if not is_full(err):
                log.error("cannot write the host files in %s: %s", self.host.folder, err)
                return
            # A full disk passes: keep the set (unless a newer one came) and try again then.
            log.warning("cannot write the host files in %s: %s; trying again once space is "
                        "freed", self.host.folder, err.strerror)  # fmt: skip
            if self._latest is None:
                self._latest = nodes
            self._waiting = True
            try:
                await self._space.wait()
            finally:
                self._waiting = False
            return
        self._space.recovered()
        if changed:
            log.info("host files rewritten: %s", ", ".join(changed))
