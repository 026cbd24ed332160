"""The issue's check, for real: a QEMU virtual machine network-boots from `wolfpack up --dhcp`.

One lab for the module (libs/runtime/lab): a busybox image with this machine's Debian cloud
kernel imported through the builder, a network namespace whose tap device is the machine's
wire, and `wolfpack up --ip --dhcp --dhcp-range` serving it (dnsmasq, tftpd on 69/udp, bootd).
Each test adds a node through the API (MAC, address, netmask, image, a 3 s agent interval, a
site overlay of its own among its runtime overlays) and powers on a machine with that MAC:
BIOS (Debian's iPXE ROM, straight to HTTP) or UEFI (OVMF's PXE client: DHCP, TFTP for iPXE,
then HTTP). From the serial console, dnsmasq's log, the NATS stage events, bootd's status and
`wolfctl node status`, it checks every step a person would: the lease, the fetches, the kernel,
wwinit's hostname and address from the registry, the image's init, the agent's runtime fetch
and report; then an edit of the node's runtime overlay through the API reaches the running
node within about two agent intervals (the agent may be mid-fetch of the old digest).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from libs.runtime.lab.session import Lab
from tests.e2e.bootlab import boot_and_check, opened, require_firmware


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with opened(tmp_path_factory.mktemp("bootlab")) as running:
        yield running


def test_bios_node_boots_from_the_network(lab: Lab) -> None:
    require_firmware("bios")
    node = lab.node("bios01", 10)
    timings = lab.run(boot_and_check(lab.stack, lab.events, lab.workdir, node, "bios"), timeout=300)
    print(timings.summary())


def test_uefi_node_boots_from_the_network(lab: Lab) -> None:
    require_firmware("uefi")
    node = lab.node("uefi01", 11)
    timings = lab.run(boot_and_check(lab.stack, lab.events, lab.workdir, node, "uefi"), timeout=300)
    print(timings.summary())
