"""`wolfpack up` inside the lab's namespace, serving DHCP on its tap, and what the lab asks of
it: an image imported with wolfctl, nodes and overlay files through the API, boot status."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
import msgspec

import libs
from libs.common import names
from libs.common.models.boot_status import NodeBootStatus
from libs.common.models.overlay import BootManifest
from libs.runtime.lab.console import LineLog
from libs.runtime.lab.netns import Namespace, Wire

REPO: Final = Path(libs.__file__).resolve().parent.parent
API: Final = names.API_PREFIX
READY_LINE: Final = "wolfpack is up"
STOP_TIMEOUT: Final = 30.0


class LabError(Exception):
    """The stack did something the lab did not expect; the message says what."""


@dataclass
class LabStack:
    """A running stack serving the machines on `ns`'s tap: `wolfpack up` inside a namespace
    (bound to the tap's address, DHCP on the tap), or containers beside a tap of the host's
    (`process` then follows their log)."""

    ns: Wire
    data: Path
    process: asyncio.subprocess.Process
    log: LineLog
    token: str = ""
    pump: asyncio.Task[None] | None = None
    clients: dict[str, httpx.AsyncClient] = field(default_factory=dict)
    # Where the APIs answer; None: on the tap's address.
    api_host: str | None = None
    # What wolfctl is given besides WOLFPACK_DATA (containers: where NATS is published).
    wolfctl_env: dict[str, str] = field(default_factory=dict)

    def url(self, service: str) -> str:
        return f"http://{self.api_host or self.ns.ip}:{names.PORTS[service]}"

    def api(self, service: str) -> httpx.AsyncClient:
        """A client of `service`'s API with the token."""
        if service not in self.clients:
            self.clients[service] = httpx.AsyncClient(
                base_url=self.url(service) + API,
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=60,
            )
        return self.clients[service]

    @property
    def nats_url(self) -> str:
        """With up's client token as the URL's user (libs/common/bus/auth.py)."""
        token = (self.data / names.NATS_TOKEN_FILE).read_text().strip()
        return f"nats://{token}@127.0.0.1:{names.NATS_PORT}"

    async def stop(self) -> None:
        for client in self.clients.values():
            await client.aclose()
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(STOP_TIMEOUT):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self.pump is not None:
            await self.pump


def up_argv(ns: Namespace, data: Path, dhcp_range: tuple[str, str]) -> list[str]:
    """`wolfpack up` on the namespace's tap: servers bound to its address, DHCP on it."""
    return [
        sys.executable,
        "-m",
        "libs.runtime.cli",
        "up",
        "--data",
        str(data),
        "--bind",
        ns.ip,
        "--ip",
        ns.ip,
        "--dhcp",
        ns.tap,
        "--dhcp-range",
        ",".join(dhcp_range),
    ]


async def start_stack(
    ns: Namespace, data: Path, dhcp_range: tuple[str, str], log_file: Path, within: float = 90
) -> LabStack:
    """Start `wolfpack up` in `ns` (DATA `data`) and wait until it says it is up."""
    process = await asyncio.create_subprocess_exec(
        *ns.exec_argv(up_argv(ns, data, dhcp_range)),
        cwd=REPO,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    log = LineLog("wolfpack up", copy_to=log_file)
    stack = LabStack(ns=ns, data=data, process=process, log=log)
    stack.pump = asyncio.create_task(log.pump(process.stdout))
    try:
        await log.wait_for(READY_LINE, within)
    except (TimeoutError, EOFError):
        await stack.stop()
        raise
    stack.token = (data / names.TOKEN_FILE).read_text().strip()
    return stack


async def run_wolfctl(stack: LabStack, *args: str, within: float = 300) -> str:
    """`wolfctl ARGS` as a user runs it inside the namespace (it finds the stack through
    DATA/endpoints.json); its output, or LabError with it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WOLFPACK_")}
    env["WOLFPACK_DATA"] = str(stack.data)
    env |= stack.wolfctl_env
    process = await asyncio.create_subprocess_exec(
        *stack.ns.exec_argv([sys.executable, "-m", "libs.wolfctl.main", *args]),
        cwd=REPO,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(within):
        out, _ = await process.communicate()
    text = out.decode(errors="replace")
    if process.returncode != 0:
        raise LabError(f"wolfctl {' '.join(args)} exited with {process.returncode}:\n{text}")
    return text


async def import_image(stack: LabStack, tarball: Path, name: str) -> str:
    """Import the rootfs tarball through the builder and wait for the build (wolfctl waits)."""
    out = await run_wolfctl(stack, "image", "import", str(tarball), name)
    if f"image {name} built" not in out:
        raise LabError(f"wolfctl image import did not report the build:\n{out}")
    return out


async def checked(response: httpx.Response) -> Any:
    if response.is_error:
        raise LabError(f"{response.request.method} {response.request.url}: {response.text}")
    return response.json() if response.content else None


async def put_overlay_file(stack: LabStack, overlay: str, path: str, text: str) -> None:
    """Write one file of site overlay `overlay`, creating the overlay if it does not exist."""
    overlays = stack.api("overlayd")
    if (await overlays.get(f"/overlays/{overlay}")).status_code == 404:
        await checked(await overlays.post("/overlays", json={"name": overlay, "empty": True}))
    put = await overlays.put(
        f"/overlays/{overlay}/files/{path}", content=text.encode(), params={"mode": "0644"}
    )
    await checked(put)


async def put_node(stack: LabStack, name: str, node: dict[str, Any]) -> None:
    await checked(await stack.api("registry").put(f"/nodes/{name}", json=node))


async def manifest(stack: LabStack, name: str) -> BootManifest | None:
    found = await stack.api("overlayd").get(f"/nodes/{name}/manifest")
    if found.status_code == 404:
        return None
    await checked(found)
    return msgspec.json.decode(found.content, type=BootManifest)


async def boot_status(stack: LabStack, name: str) -> NodeBootStatus | None:
    """bootd's status of node `name` (GET /api/v1/status)."""
    found = await checked(await stack.api("bootd").get("/status"))
    statuses = msgspec.convert(found, list[NodeBootStatus])
    return next((s for s in statuses if s.node == name), None)
