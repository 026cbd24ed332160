"""A lab node: its registry entry, its runtime overlay, and the virtual machine that boots it."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from libs.common.models.overlay import BootManifest
from libs.runtime.lab import stack as api
from libs.runtime.lab.console import LineLog
from libs.runtime.lab.events import NodeEvents
from libs.runtime.lab.qemu import Firmware, find_qemu, qemu_argv
from libs.runtime.lab.rootfs import LAB_FILE
from libs.runtime.lab.stack import LabError, LabStack

RENDER_TIMEOUT: Final = 60.0
STOP_TIMEOUT: Final = 10.0
LEASES_READ: Final = re.compile(r"dnsmasq.*: read \S*/dhcp-hosts$")


@dataclass(frozen=True)
class LabNode:
    """A node as the lab registers it: one NIC with a static address, the lab image, a short
    agent interval, and a site overlay of its own among its runtime overlays."""

    name: str
    mac: str
    ip: str
    netmask: str
    image: str
    interval: int = 3

    @property
    def overlay(self) -> str:
        return f"{self.name}-site"

    def definition(self) -> dict[str, Any]:
        """The registry's node object (PUT /api/v1/nodes/NAME)."""
        return {
            "profiles": ["default"],
            "image": self.image,
            # Kernel messages on the serial console: the default profile's `quiet` goes.
            "kernel": {"args": ["~quiet", "console=ttyS0"]},
            "network_devices": {
                "default": {
                    "device": "eth0",
                    "hwaddr": self.mac,
                    "ipaddr": self.ip,
                    "netmask": self.netmask,
                }
            },
            "runtime_overlay": [self.overlay],
            "tags": {"agent.interval": str(self.interval)},
        }


async def add_node(
    stack: LabStack, events: NodeEvents, node: LabNode, message: str
) -> BootManifest:
    """Register `node` with `message` in its runtime overlay's lab file; return its manifest
    once overlayd rendered it and dnsmasq read its static lease."""
    since = time.monotonic()
    await api.put_overlay_file(stack, node.overlay, LAB_FILE, message + "\n")
    await api.put_node(stack, node.name, node.definition())
    await events.rendered(node.name, RENDER_TIMEOUT, since, lambda e: e.runtime_digest is not None)
    manifest = await api.manifest(stack, node.name)
    if manifest is None or manifest.kernel_digest is None or manifest.image_digest is None:
        raise LabError(f"node {node.name} has no kernel or image in its manifest: {manifest}")
    await _lease_loaded(stack, node)
    return manifest


async def _lease_loaded(stack: LabStack, node: LabNode) -> None:
    """Until dnsmasq has read a dhcp-hosts file holding the node's MAC: it logs each reading
    (at its start, and on each hangup overlayd's reload sends after a write)."""
    hosts = stack.data / "host" / "dhcp-hosts"
    while True:
        written = hosts.stat().st_mtime
        readings = [
            time.time() - (time.monotonic() - at)
            for line, at in zip(stack.log.lines, stack.log.times, strict=True)
            if LEASES_READ.search(line)
        ]
        if node.mac in hosts.read_text() and any(read >= written for read in readings):
            return
        await stack.log.wait_for(LEASES_READ, RENDER_TIMEOUT, since=len(stack.log.lines))


async def change_message(stack: LabStack, node: LabNode, message: str) -> None:
    await api.put_overlay_file(stack, node.overlay, LAB_FILE, message + "\n")


@dataclass
class Machine:
    node: LabNode
    firmware: Firmware
    process: asyncio.subprocess.Process
    console: LineLog
    powered_on: float
    pump: asyncio.Task[None]

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        async with asyncio.timeout(STOP_TIMEOUT):
            await self.process.wait()
            await self.pump


async def power_on(stack: LabStack, node: LabNode, firmware: Firmware, workdir: Path) -> Machine:
    """Start the node's virtual machine on the lab's tap; its console is read as it comes."""
    qemu = find_qemu(firmware)
    argv = qemu_argv(qemu, firmware, tap=stack.ns.tap, mac=node.mac, workdir=workdir)
    process = await asyncio.create_subprocess_exec(
        *stack.ns.exec_argv(argv),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    powered_on = time.monotonic()
    assert process.stdout is not None
    log_file = workdir / f"{node.name}.{firmware}.console.log"
    console = LineLog(f"{node.name} console ({firmware})", copy_to=log_file)
    pump = asyncio.create_task(console.pump(process.stdout))
    return Machine(node, firmware, process, console, powered_on, pump)


def dhcp_ack(node: LabNode, tap: str) -> re.Pattern[str]:
    """dnsmasq's log line for the node's lease."""
    return re.compile(rf"DHCPACK\({re.escape(tap)}\) {re.escape(node.ip)} {re.escape(node.mac)}")
