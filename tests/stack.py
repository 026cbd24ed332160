"""Helpers that start real wolfpack processes for tests (imported by conftest files)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nats
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from libs.common import names
from libs.common.bus.connection import Bus
from libs.common.bus.server import NatsServer, free_port
from tests.cli import start_cli
from tests.event_recorder import recording
from tests.waiting import NeverHappened, eventually, eventually_sync


@dataclass
class RegistryProcess:
    url: str
    token: str
    nats_url: str
    data: str
    process: subprocess.Popen[bytes]


def log_tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""


def wait_healthy(
    url: str,
    process: subprocess.Popen[bytes],
    log: Path,
    timeout: float = 30,
    ca: Path | None = None,
) -> None:
    """Poll `url`/healthz until it answers 200; an https URL is verified against `ca` (which
    the process may still be writing: until it exists, the service is not up either)."""

    def healthz() -> httpx.Response:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode}:\n{log_tail(log)}")
        verify = ssl.create_default_context(cafile=str(ca)) if ca is not None else True
        return httpx.get(f"{url}/healthz", timeout=1, verify=verify)

    try:
        eventually_sync(
            healthz,
            f"{url}/healthz answering 200",
            within=timeout,
            until=lambda answer: answer.status_code == 200,
            ignoring=(httpx.HTTPError, FileNotFoundError),
        )
    except NeverHappened as err:
        raise NeverHappened(f"{err}\n{log_tail(log)}") from err.__cause__


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.asynccontextmanager
async def connected_bus(
    url: str, name: str = "test", token: str | None = None
) -> AsyncIterator[Bus]:
    """A Bus on the nats-server at `url` (a test's own, or a stack's), as a service connects:
    the WOLFPACK stream and every bucket made if missing. Closed at the end."""
    bus = await Bus.connect(url, name, token=token)
    try:
        yield bus
    finally:
        await bus.close()


@contextlib.asynccontextmanager
async def nats_client(url: str, **options: Any) -> AsyncIterator[NatsClient]:
    """A bare nats.py client, where a test must look below a Bus (raw subjects, JetStream's
    consumer and stream state) or connect with options of its own. Closed at the end."""
    nc = await nats.connect(url, **options)
    try:
        yield nc
    finally:
        await nc.close()


@contextlib.contextmanager
def start_nats(store: Path) -> Iterator[NatsServer]:
    server = NatsServer(store, port=free_port())
    asyncio.run(server.start())
    try:
        yield server
    finally:
        asyncio.run(server.stop())


def run_service(
    service: str, data: Path, nats_url: str, *extra: str, env: Mapping[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], int, Path]:
    """`wolfpack run SERVICE` on a free port (with WOLFPACK_ variables `env`): the process,
    its port and its log."""
    port = free_port()
    offset = port - names.PORTS[service]
    data.mkdir(parents=True, exist_ok=True)
    log = data.parent / f"{service}.log"
    process = start_cli(
        "wolfpack",
        *("run", service, "--data", str(data), "--nats", nats_url),
        *("--bind", "127.0.0.1", "--port-offset", str(offset), *extra),
        log=log,
        env=env,
    )
    return process, port, log


@contextlib.contextmanager
def start_registry(tmp: Path, *extra: str) -> Iterator[RegistryProcess]:
    data = tmp / "data"
    with start_nats(tmp / "nats") as nats:
        process, port, log = run_service("registry", data, nats.url, *extra)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, process, log)
            token = (data / names.TOKEN_FILE).read_text().strip()
            yield RegistryProcess(
                url=url, token=token, nats_url=nats.url, data=str(data), process=process
            )
        finally:
            stop_process(process)


async def empty_registry(registry: RegistryProcess) -> None:
    """Delete every node, then every profile (children before the profiles they use)."""
    headers = {"Authorization": f"Bearer {registry.token}"}
    async with httpx.AsyncClient(base_url=registry.url, headers=headers, timeout=60) as api:
        nodes = (await api.get("/api/v1/nodes")).json()
        sem = asyncio.Semaphore(32)

        async def delete(path: str) -> None:
            async with sem:
                await api.delete(path)

        await asyncio.gather(*(delete(f"/api/v1/nodes/{n['name']}") for n in nodes))
        for _ in range(20):
            profiles = (await api.get("/api/v1/profiles")).json()
            if not profiles:
                return
            await asyncio.gather(*(delete(f"/api/v1/profiles/{p['name']}") for p in profiles))
        raise RuntimeError("could not empty the registry's profiles")


@dataclass
class UpStack:
    """A whole `wolfpack up` process tree: embedded nats-server and every service."""

    data: Path
    port_offset: int
    token: str
    process: subprocess.Popen[bytes]
    log: Path
    # Started with --tls: the APIs are HTTPS (bootd's on BOOTD_TLS_PORT), trusted via `ca`.
    tls: bool = False

    def url(self, service: str) -> str:
        """The service's API (as DATA/endpoints.json says); bootd's boot path is `boot_url`."""
        if self.tls and service == "bootd":
            return f"https://127.0.0.1:{names.BOOTD_TLS_PORT + self.port_offset}"
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{names.PORTS[service] + self.port_offset}"

    @property
    def boot_url(self) -> str:
        """bootd's plain HTTP port, where nodes boot from (with or without --tls)."""
        return f"http://127.0.0.1:{names.PORTS['bootd'] + self.port_offset}"

    @property
    def ca(self) -> Path:
        return self.data / "tls" / "ca.pem"

    @property
    def registry_url(self) -> str:
        return self.url("registry")

    @property
    def nats_url(self) -> str:
        """The embedded nats-server, with its client token (DATA/nats.token) as the URL's
        user: a test connects as any wolfpack process on the host does."""
        return f"nats://{self.nats_token}@127.0.0.1:{names.NATS_PORT + self.port_offset}"

    @property
    def nats_token(self) -> str:
        return (self.data / names.NATS_TOKEN_FILE).read_text().strip()


def ephemeral_start() -> int:
    """The first port the kernel hands out to unbound sockets (connections, free_port())."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port_offset() -> int:
    """An offset at which the NATS port, every service port and TFTP's UDP port are free.
    All of them stay between 1024 and the start of the ephemeral range: inside that range, a
    port free now can be taken by any outgoing connection before the stack binds it."""
    import random
    import socket

    ports = [names.NATS_PORT, names.BOOTD_TLS_PORT, names.TFTP_PORT, *names.PORTS.values()]
    low, high = 1024 - min(ports), ephemeral_start() - max(ports)
    if high <= low:
        raise RuntimeError(f"no port offset keeps {sorted(ports)} below the ephemeral range")
    for _ in range(100):
        offset = random.randrange(low, high)
        wanted = [port + offset for port in ports if port != names.TFTP_PORT]
        try:
            for port in wanted:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", names.TFTP_PORT + offset))
        except OSError:
            continue
        return offset
    raise RuntimeError("no free port range found")


@contextlib.contextmanager
def start_up(data: Path, port_offset: int | None = None, *extra: str) -> Iterator[UpStack]:
    offset = free_port_offset() if port_offset is None else port_offset
    data.mkdir(parents=True, exist_ok=True)
    log = data.parent / "up.log"
    process = start_cli(
        "wolfpack",
        *("up", "--data", str(data), "--bind", "127.0.0.1", "--port-offset", str(offset)),
        *extra,
        log=log,
    )
    try:
        stack = UpStack(
            data=data, port_offset=offset, token="", process=process, log=log, tls="--tls" in extra
        )
        ca = stack.ca if stack.tls else None
        for service in names.SERVICES:
            wait_healthy(stack.url(service), process, log, timeout=60, ca=ca)
        stack.token = (data / names.TOKEN_FILE).read_text().strip()
        with recording(stack.nats_url):
            yield stack
    finally:
        stop_process(process, timeout=30)


async def overlayd_settled(
    nats_url: str, status: Callable[[], Awaitable[dict[str, Any]]], within: float = 60.0
) -> dict[str, Any]:
    """Until overlayd has nothing left to do: each of its durable consumers has had every
    event acknowledged (so noted), and `status()` (its GET /status) shows the start-up render
    done and no change waiting, no wave or follow-up running, no host file unwritten. No
    event says "nothing happens any more", so this asks every 20 ms. Returns that status."""
    from services.overlayd.bus import DURABLES

    async def look(js: JetStreamContext) -> dict[str, Any]:
        infos = [await js.consumer_info(names.STREAM, d) for d in DURABLES.values()]
        unacknowledged = {
            i.name: (i.num_pending, i.num_ack_pending)
            for i in infos
            if not (i.num_pending == 0 and i.num_ack_pending == 0)
        }
        return {"unacknowledged": unacknowledged} if unacknowledged else await status()

    def idle(found: dict[str, Any]) -> bool:
        if "unacknowledged" in found:
            return False
        busy = found["busy"] or found["pending"] or found["followup"] or found["host_files_pending"]
        return bool(found["reconciled"]) and not busy

    async with nats_client(nats_url) as nc:
        js = nc.jetstream()
        return await eventually(
            lambda: look(js), "overlayd settled", within=within, until=idle, every=0.02
        )
