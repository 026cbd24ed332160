"""The boot tests' lab (libs/runtime/lab): opened once per test module, with what this machine
lacks turned into `unavailable()` (a skip here, a failure under CI=true), and the timings of a
boot as the tests measure them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from libs.runtime.lab.errors import Missing
from libs.runtime.lab.qemu import Firmware, find_qemu
from libs.runtime.lab.session import Lab, check_host, open_lab
from tests.needs import unavailable


@contextlib.contextmanager
def opened(workdir: Path) -> Iterator[Lab]:
    """The lab, or unavailable() naming what this machine lacks (root, tun, the kernel...)."""
    try:
        check_host()
    except Missing as missing:
        unavailable(str(missing))
    with open_lab(workdir) as lab:
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
