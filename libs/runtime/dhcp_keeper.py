"""`wolfpack dhcp`: dnsmasq in the foreground, kept in step with the host files overlayd
writes, for a container of its own on the cluster network (compose's host-network override).

Under `wolfpack up` overlayd SIGHUPs the dnsmasq up supervises. Across containers it cannot
(no shared process namespace), so this keeper watches DATA/host itself: a new dhcp-hosts is a
SIGHUP (dnsmasq re-reads it), a new dnsmasq.conf a restart (dnsmasq never re-reads its main
file). Files are compared by stat, not inotify: overlayd replaces them by rename, and a
volume shared between containers does not always carry inotify events across.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from libs.common.errors import Invalid
from libs.common.logs import setup_logging
from libs.common.settings import Settings
from libs.common.site.config import HOST_DIR
from libs.common.site.hostfiles import DHCP_HOSTS, DNSMASQ
from libs.runtime import dhcp
from libs.runtime.host import StartupFailed, stopped_by_signals
from libs.runtime.network import ServerNetwork
from libs.runtime.supervisor import Child

# How often the files are looked at: a lease change reaches dnsmasq within this.
POLL_SECONDS: Final = 0.5
STOP_SECONDS: Final = 10.0

Stamp = tuple[int, int, int] | None


def stamp(path: Path) -> Stamp:
    """What tells a replaced or rewritten file from the one seen before (None: missing)."""
    try:
        found = path.stat()
    except FileNotFoundError:
        return None
    return (found.st_ino, found.st_mtime_ns, found.st_size)


def stamps(folder: Path) -> dict[str, Stamp]:
    return {name: stamp(folder / name) for name in (DNSMASQ, DHCP_HOSTS)}


def changed(before: Mapping[str, Stamp], now: Mapping[str, Stamp]) -> set[str]:
    return {name for name, seen in now.items() if before.get(name) != seen}


class DhcpKeeper:
    """Runs `child` (dnsmasq) until `stop` is set; restarts it when it dies or its main file
    changes, signals it when its leases change. `folder` is DATA/host."""

    def __init__(self, child: Child, folder: Path, pid_file: Path, log: logging.Logger) -> None:
        self.child = child
        self.folder = folder
        self.pid_file = pid_file
        self.log = log
        self.restarts = 0

    async def run(self, stop: asyncio.Event) -> None:
        delay = 0.5
        while not stop.is_set():
            # A pid file left by a dnsmasq of an earlier container names no process of ours.
            self.pid_file.unlink(missing_ok=True)
            seen = stamps(self.folder)
            proc = await asyncio.create_subprocess_exec(*self.child.argv)
            self.log.info("started dnsmasq (pid %d)", proc.pid)
            reason = await self._follow(proc, seen, stop)
            await self._end(proc)
            if reason == "stop":
                return
            self.restarts += 1
            if reason == "died":
                self.log.warning(
                    "dnsmasq exited with code %s; starting it again in %.1fs",
                    proc.returncode,
                    delay,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, 30.0)
            else:
                self.log.info("%s changed: dnsmasq restarted to read it", DNSMASQ)
                delay = 0.5

    async def _follow(
        self, proc: asyncio.subprocess.Process, seen: dict[str, Stamp], stop: asyncio.Event
    ) -> str:
        """Why dnsmasq must go: "stop", "died" or "config"; SIGHUPs it for new leases."""
        exited = asyncio.ensure_future(proc.wait())
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while True:
                done, _ = await asyncio.wait(
                    {exited, stopping}, timeout=POLL_SECONDS, return_when=asyncio.FIRST_COMPLETED
                )
                if stopping in done:
                    return "stop"
                if exited in done:
                    return "died"
                now = stamps(self.folder)
                news = changed(seen, now)
                seen = now
                if DNSMASQ in news:
                    return "config"
                if DHCP_HOSTS in news:
                    with contextlib.suppress(ProcessLookupError):
                        proc.send_signal(signal.SIGHUP)
                    self.log.info("%s changed: dnsmasq re-reads it", DHCP_HOSTS)
        finally:
            exited.cancel()
            stopping.cancel()

    async def _end(self, proc: asyncio.subprocess.Process) -> None:
        if proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), STOP_SECONDS)
        except TimeoutError:
            self.log.warning("dnsmasq ignored SIGTERM for %gs; killing it", STOP_SECONDS)
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            await proc.wait()


async def keep_dhcp(settings: Settings, network: ServerNetwork) -> None:
    """`wolfpack dhcp`: the flags into overlayd.yaml (overlayd renders the leases from them),
    then dnsmasq until SIGINT/SIGTERM."""
    log = setup_logging("dhcp", settings.log_level)
    try:
        child = dhcp.configure(settings, network, None)
    except Invalid as err:
        raise StartupFailed(err.message) from None
    if child is None:
        raise StartupFailed("--dhcp IFACE is needed: the interface dnsmasq answers on")
    data = settings.data_dir.resolve()
    keeper = DhcpKeeper(child, data / HOST_DIR, data / dhcp.STATE_DIR / "dnsmasq.pid", log)
    stop = asyncio.Event()
    with stopped_by_signals(stop):
        log.info("%s", dhcp.describe(network))
        await keeper.run(stop)
    log.info("stopped")
