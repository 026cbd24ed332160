"""The lab's private network: a network namespace holding a tap device (the virtual machine's
wire) with the server's address on it, and a thread that lives inside that namespace.

Everything wolfpack serves to the node (DHCP, TFTP on 69/udp, bootd on 9873) runs inside the
namespace, so the default ports are free and no DHCP answer can leak to a real network. The
test and the demo talk to the stack (HTTP, NATS on its 127.0.0.1) from `NamespaceLoop`, an
event loop on a thread that joined the namespace: a thread's network namespace is its own
(setns(2)), and the sockets and child processes it creates are in that namespace.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import ipaddress
import os
import secrets
import shutil
import signal
import subprocess
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

from libs.runtime.lab.errors import Missing

NETNS_DIR: Final = Path("/run/netns")
CLONE_NEWNET: Final = 0x40000000
TUN: Final = Path("/dev/net/tun")
T = TypeVar("T")


def check_network_host() -> str:
    """The `ip` binary, if this machine can make the lab's network (root, tun, iproute2)."""
    if os.geteuid() != 0:
        raise Missing("the lab needs root (network namespaces, a tap device, DHCP)")
    if not TUN.exists():
        raise Missing(f"{TUN} is missing (modprobe tun)")
    ip = shutil.which("ip") or shutil.which("ip", path="/usr/sbin:/sbin")
    if ip is None:
        raise Missing("`ip` (iproute2) is not installed")
    return ip


def unique_name(prefix: str = "wolfpack-lab") -> str:
    return f"{prefix}-{os.getpid()}-{secrets.token_hex(2)}"


class Wire(Protocol):
    """Where a lab machine is plugged in: a tap carrying the server's address, and the way to
    run a program (QEMU, wolfctl) on that side of it."""

    @property
    def tap(self) -> str: ...

    @property
    def ip(self) -> str: ...

    @property
    def netmask(self) -> str: ...

    def host(self, number: int) -> str: ...

    def exec_argv(self, argv: list[str]) -> list[str]: ...


class Addressed:
    """The addresses of a tap carrying `server` (ADDR/PREFIX)."""

    server: ipaddress.IPv4Interface

    @property
    def ip(self) -> str:
        return str(self.server.ip)

    @property
    def netmask(self) -> str:
        return str(self.server.netmask)

    def host(self, number: int) -> str:
        """Address number `number` of the tap's network (10.99.0.0/24, 10 → 10.99.0.10)."""
        return str(self.server.network.network_address + number)


@dataclass(frozen=True)
class HostTap(Addressed):
    """A tap device of ours in this process's own network namespace carrying `server`: the
    wire of a machine served by host-networked containers (compose's override), which cannot
    join a namespace of the lab's. Its address and network are the caller's choosing, so DHCP
    answers stay on it."""

    tap: str
    server: ipaddress.IPv4Interface
    ip_binary: str = "ip"

    def exec_argv(self, argv: list[str]) -> list[str]:
        return argv

    @classmethod
    def create(cls, tap: str, server: str, ip_binary: str = "ip") -> HostTap:
        made = cls(tap, ipaddress.IPv4Interface(server), ip_binary)
        _ip(ip_binary, "tuntap", "add", "dev", tap, "mode", "tap")
        try:
            _ip(ip_binary, "address", "add", server, "dev", tap)
            _ip(ip_binary, "link", "set", tap, "up")
        except BaseException:
            made.delete()
            raise
        return made

    def delete(self) -> None:
        subprocess.run([self.ip_binary, "link", "delete", self.tap], capture_output=True)


@dataclass(frozen=True)
class Namespace(Addressed):
    """A network namespace of ours with one tap device carrying `server` (ADDR/PREFIX)."""

    name: str
    tap: str
    server: ipaddress.IPv4Interface
    ip_binary: str = "ip"

    def exec_argv(self, argv: list[str]) -> list[str]:
        """`argv` run inside the namespace (`ip netns exec` execs it: same pid)."""
        return [self.ip_binary, "netns", "exec", self.name, *argv]

    @classmethod
    def create(cls, name: str, tap: str, server: str, ip_binary: str = "ip") -> Namespace:
        """Make the namespace, bring up its loopback, add the tap with `server` on it."""
        made = cls(name, tap, ipaddress.IPv4Interface(server), ip_binary)
        _ip(ip_binary, "netns", "add", name)
        try:
            _ip(ip_binary, "-n", name, "link", "set", "lo", "up")
            _ip(ip_binary, "-n", name, "tuntap", "add", "dev", tap, "mode", "tap")
            _ip(ip_binary, "-n", name, "address", "add", server, "dev", tap)
            _ip(ip_binary, "-n", name, "link", "set", tap, "up")
        except BaseException:
            made.delete()
            raise
        return made

    def pids(self) -> list[int]:
        done = subprocess.run(
            [self.ip_binary, "netns", "pids", self.name], capture_output=True, text=True
        )
        return [int(p) for p in done.stdout.split()] if done.returncode == 0 else []

    def delete(self) -> None:
        """End what still runs in the namespace (only what the lab started can be there),
        then delete it; its tap goes with it."""
        for pid in self.pids():
            if pid != os.getpid():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        subprocess.run([self.ip_binary, "netns", "delete", self.name], capture_output=True)


def _ip(ip_binary: str, *args: str) -> None:
    done = subprocess.run([ip_binary, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise Missing(f"ip {' '.join(args)}: {done.stderr.strip()}")


def join(name: str) -> None:
    """Move the calling thread into network namespace `name`."""
    fd = os.open(NETNS_DIR / name, os.O_RDONLY)
    try:
        setns = getattr(os, "setns", None)  # Python 3.12+
        if setns is not None:
            setns(fd, CLONE_NEWNET)
            return
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns into {name}: {os.strerror(errno)}")
    finally:
        os.close(fd)


class NamespaceLoop:
    """An asyncio loop on a thread inside namespace `name`; `run()` hands it a coroutine from
    any other thread and waits for the result."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name=f"netns {name}", daemon=True)

    def _main(self) -> None:
        try:
            join(self.name)
            self._loop = asyncio.new_event_loop()
        except BaseException as err:  # told to start(), which raises it
            self._error = err
            self._ready.set()
            return
        asyncio.set_event_loop(self._loop)
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    def start(self) -> NamespaceLoop:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        return self

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "NamespaceLoop.start() first"
        return self._loop

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coro` in the namespace and return its result (its exception is raised here)."""
        future = self.submit(coro)
        done, _ = concurrent.futures.wait([future], timeout)
        if not done:
            future.cancel()
            raise TimeoutError(f"the lab did not finish within {timeout} s")
        return future.result()

    def stop(self) -> None:
        if self._loop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)
