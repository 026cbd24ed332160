"""The boot tests' lab (libs/runtime/lab): opened once per test module, with what this machine
lacks turned into `unavailable()` (a skip here, a failure under CI=true); the whole check of a
node's network boot, against `wolfpack up` in the lab or the containers, and its timings."""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from libs.common.models.boot_stage import BootStage
from libs.runtime.lab import rootfs
from libs.runtime.lab.errors import Missing
from libs.runtime.lab.events import NodeEvents
from libs.runtime.lab.machine import LabNode, add_node, change_message, dhcp_ack, power_on
from libs.runtime.lab.qemu import Firmware, find_qemu
from libs.runtime.lab.session import Lab, check_host, open_lab
from libs.runtime.lab.stack import LabStack, boot_status, run_wolfctl
from tests.event_recorder import recording
from tests.needs import unavailable

BOOT_TIMEOUT = 120.0  # seconds from power-on to the image's init; TCG takes about 20-30
STEP_TIMEOUT = 60.0
# A change reaches the node within two agent intervals (a fetch of the old digest may just have
# begun, then a whole interval to the next) plus this: the lab-file watcher looks once a
# second, and TCG on a loaded machine is slow.
CHANGE_MARGIN = 15.0
# bootd's stages of a boot, in order; `system` once per system overlay archive.
HTTP_STAGES = ["ipxe", "kernel", "image", "system", "runtime", "agent"]


@contextlib.contextmanager
def opened(workdir: Path) -> Iterator[Lab]:
    """The lab, or unavailable() naming what this machine lacks (root, tun, the kernel...)."""
    try:
        check_host()
    except Missing as missing:
        unavailable(str(missing))
    # Checked from the hand-over on: the lab's own image import goes unheard (test_image_check
    # hears imports).
    with open_lab(workdir) as lab, recording(lab.stack.nats_url, run=lab.run):
        yield lab


def require_firmware(firmware: Firmware) -> None:
    """QEMU and the firmware's files (ipxe-qemu's ROM, OVMF), else unavailable()."""
    try:
        find_qemu(firmware)
    except Missing as missing:
        unavailable(str(missing))


@dataclass
class Timings:
    """Seconds from power-on (QEMU started) to each milestone of a boot."""

    firmware: str
    dhcp: float = 0.0
    script: float = 0.0
    kernel: float = 0.0
    userspace: float = 0.0
    image_init: float = 0.0
    agent_report: float = 0.0
    change_applied: float = 0.0  # from the re-render to the node showing the new file

    def summary(self) -> str:
        return (
            f"{self.firmware}: DHCP {self.dhcp:.1f} s, iPXE script {self.script:.1f} s, "
            f"kernel {self.kernel:.1f} s, userspace {self.userspace:.1f} s, image init "
            f"{self.image_init:.1f} s, agent report {self.agent_report:.1f} s after power-on; "
            f"runtime change on the node {self.change_applied:.1f} s after its render"
        )


async def boot_and_check(
    stack: LabStack, events: NodeEvents, workdir: Path, node: LabNode, firmware: Firmware
) -> Timings:
    """Add `node`, power on its machine and check every step a person would, from the lease
    to a runtime-overlay edit reaching the running node; the timings of each step."""
    since = time.monotonic()
    manifest = await add_node(stack, events, node, "first")
    log_from = len(stack.log.lines)
    machine = await power_on(stack, node, firmware, workdir)
    timings = Timings(firmware)
    console = machine.console

    def at(seen_at: float) -> float:
        return round(seen_at - machine.powered_on, 1)

    try:
        # The firmware's DHCP answered by dnsmasq with the node's static lease.
        await stack.log.wait_for(dhcp_ack(node, stack.ns.tap), BOOT_TIMEOUT, since=log_from)
        if firmware == "uefi":
            # OVMF's own PXE client: lease, then iPXE over TFTP from tftpd.
            await console.wait_for(rf"Station IP address is {re.escape(node.ip)}\b", STEP_TIMEOUT)
            await console.wait_for("NBP file downloaded successfully", STEP_TIMEOUT)
            tftp = await events.stage(node.name, "tftp", STEP_TIMEOUT, since)
            assert tftp.event.file in ("ipxe.efi", "snponly.efi") and tftp.event.bytes > 0
        ipxe_lease = await console.wait_for(
            rf"net0: {re.escape(node.ip)}/{re.escape(node.netmask)}", BOOT_TIMEOUT
        )
        timings.dhcp = at(ipxe_lease.at)
        script = await console.wait_for(rf"wolfpack: booting {node.name} \({node.mac}\)", 60)
        timings.script = at(script.at)
        # The kernel from the image booted, with the node's MAC on its command line.
        kernel = await console.wait_for(r"Linux version \S+-cloud-amd64", STEP_TIMEOUT)
        timings.kernel = at(kernel.at)
        await console.wait_for(rf"Command line: .*wwid={node.mac}", STEP_TIMEOUT)
        # wwinit is /init: the address and the hostname are the registry's.
        userspace = await console.wait_for(r"^wwinit: starting", STEP_TIMEOUT)
        timings.userspace = at(userspace.at)
        await console.wait_for(
            rf"wwinit: node {node.name}, image {node.image}, booted from {node.mac}", 30
        )
        await console.wait_for(rf"wwinit: network default: eth0 up {re.escape(node.ip)}$", 30)
        await console.wait_for(rf"wwinit: hostname {node.name}$", 30)
        await console.wait_for(r"wwinit: handing over to /sbin/init", 30)
        # The image's init runs (as PID 1) and sees what wwinit set.
        init = await console.wait_for(re.escape(rootfs.INIT_MARKER) + r" \(pid 1 is init\)", 30)
        timings.image_init = at(init.at)
        await console.wait_for(rf"^{re.escape(rootfs.HOSTNAME_MARKER)}{node.name}$", 30)
        await console.wait_for(rf"lab: address {re.escape(node.ip)}/24 on eth0", 30)
        # The agent fetched the runtime overlay (from a privileged port: secure mode) and
        # reported; the node shows the file the runtime overlay brought.
        report = await events.stage(node.name, "agent", STEP_TIMEOUT, since)
        timings.agent_report = at(report.at)
        assert manifest.runtime_digest is not None and manifest.runtime_digest in report.event.file
        await console.wait_for(rf"^{re.escape(rootfs.MESSAGE_MARKER)}first$", STEP_TIMEOUT)

        archives = len(manifest.system_digests)
        check_stages(events.of(node.name), node, firmware, archives)
        status = await boot_status(stack, node.name)
        assert status is not None and status.stage == "agent" and status.ok
        check_stages(status.timeline, node, firmware, archives)
        shown = json.loads(await run_wolfctl(stack, "node", "status", "-o", "json"))
        mine = next(s for s in shown if s["node"] == node.name)
        assert mine["stage"] == "agent" and mine["ok"]

        # An edit of the node's runtime overlay through the API reaches the running node
        # within about two agent intervals of overlayd's re-render.
        edited = time.monotonic()
        await change_message(stack, node, "second")
        rendered = await events.rendered(
            node.name,
            STEP_TIMEOUT,
            edited,
            lambda e: e.runtime_digest not in (None, manifest.runtime_digest),
        )
        seen = await console.wait_for(rf"^{re.escape(rootfs.MESSAGE_MARKER)}second$", STEP_TIMEOUT)
        took = timings.change_applied = round(seen.at - rendered.at, 1)
        bound = 2 * node.interval + CHANGE_MARGIN
        assert took <= bound, f"the change reached the node {took} s after its render (> {bound} s)"
        digest = rendered.event.runtime_digest
        assert digest is not None
        await events.stage(
            node.name, "agent", STEP_TIMEOUT, edited, where=lambda e: digest in e.file
        )
    except BaseException:
        print(f"--- {console.name}, last lines:\n{console.tail(60)}")
        print(f"--- {stack.log.name}, last lines:\n{stack.log.tail(40)}")
        raise
    finally:
        await machine.stop()
    return timings


def check_stages(stages: list[BootStage], node: LabNode, firmware: Firmware, archives: int) -> None:
    """Every fetch of the boot succeeded, in boot order, with the node's MAC and address:
    (UEFI: tftp,) ipxe, kernel, image, each system overlay archive, the agent's runtime fetch
    and its report. Nothing failed on the way."""
    failed = [f"{s.stage} {s.file}: {s.error}" for s in stages if not s.ok]
    assert failed == [], failed
    seen = [s.stage for s in stages]
    wanted = (["tftp"] if firmware == "uefi" else []) + HTTP_STAGES
    at = wanted.index("system")
    wanted[at : at + 1] = ["system"] * archives
    assert seen[: len(wanted)] == wanted, seen
    for stage in stages:
        assert stage.remote.startswith(f"{node.ip}:"), stage
        if stage.stage != "tftp":
            assert stage.hwaddr == node.mac, stage
        if stage.stage in ("kernel", "image", "system", "runtime"):
            assert stage.bytes > 0, stage
    runtime = next(s for s in stages if s.stage == "runtime")
    # Secure mode on a busybox image (no curl): pushed to a privileged port the agent listens on.
    assert "?callback=" in runtime.file, runtime
    assert int(runtime.file.rsplit("=", 1)[1]) < 1024, runtime
