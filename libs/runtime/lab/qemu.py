"""The lab's virtual machine: QEMU under software emulation (TCG), one virtio NIC on the tap,
booting from the network, with BIOS (SeaBIOS and the iPXE ROM of Debian's ipxe-qemu, which
goes straight to HTTP) or UEFI (OVMF's own PXE client: DHCP, then TFTP for iPXE, then HTTP)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Final, Literal

from libs.runtime.lab.errors import Missing

Firmware = Literal["bios", "uefi"]
FIRMWARES: Final[tuple[Firmware, ...]] = ("bios", "uefi")
QEMU: Final = "qemu-system-x86_64"
OVMF_CODE: Final = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS: Final = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
# Debian's ipxe-qemu: the ROM QEMU loads for a virtio NIC under BIOS.
IPXE_ROM: Final = Path("/usr/lib/ipxe/qemu/pxe-virtio.rom")
MEMORY_MIB: Final = 1024


def find_qemu(firmware: Firmware) -> str:
    """The QEMU binary, if this machine can boot `firmware` (else Missing, saying what to
    install)."""
    qemu = shutil.which(QEMU)
    if qemu is None:
        raise Missing(f"{QEMU} is not installed (Debian: apt-get install qemu-system-x86)")
    if firmware == "bios" and not IPXE_ROM.is_file():
        raise Missing(f"{IPXE_ROM} is missing (Debian: apt-get install ipxe-qemu)")
    if firmware == "uefi":
        for path in (OVMF_CODE, OVMF_VARS):
            if not path.is_file():
                raise Missing(f"{path} is missing (Debian: apt-get install ovmf)")
    return qemu


def qemu_argv(
    qemu: str,
    firmware: Firmware,
    *,
    tap: str,
    mac: str,
    workdir: Path,
    terminal: bool = False,
    memory: int = MEMORY_MIB,
) -> list[str]:
    """The command line. `terminal`: the serial console and QEMU's monitor on this terminal
    (Ctrl-A X quits), else the serial console alone on stdout."""
    argv = [qemu, "-accel", "tcg", "-m", str(memory), "-no-reboot"]
    argv += ["-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no"]
    nic = f"virtio-net-pci,netdev=n0,mac={mac}"
    if firmware == "uefi":
        # A writable copy of the variable store; no option ROM, so OVMF's own PXE client runs.
        variables = workdir / f"OVMF_VARS.{mac.replace(':', '')}.fd"
        shutil.copyfile(OVMF_VARS, variables)
        argv += ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}"]
        argv += ["-drive", f"if=pflash,format=raw,unit=1,file={variables}"]
        nic += ",romfile="
    argv += ["-device", nic, "-boot", "n"]
    # -nographic also has the BIOS and iPXE write to the serial console, not only to a screen.
    if terminal:
        return [*argv, "-nographic", "-serial", "mon:stdio"]
    return [*argv, "-nographic", "-monitor", "none", "-serial", "stdio"]
