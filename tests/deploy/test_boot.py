"""The issue's check for containers: a QEMU machine (BIOS, software emulation) network-boots
against the compose stack run as a site runs it to boot nodes, docker-compose.yml with
docker-compose.host.yml: dnsmasq (`wolfpack dhcp`), tftpd and bootd on the host's network,
the rest on the project's bridge. The machine's wire is a tap of this test's own in the host's
namespace (host networking cannot reach into another), with an address of its own; dnsmasq
answers on that tap only.

The lab's image is imported from the host through the builder container (the import folder),
and the same check as `wolfpack up`'s boot test runs (tests/e2e/bootlab.py): the lease, the
fetches, the kernel, wwinit's address and hostname, the image's init, the agent's report, and
a runtime-overlay edit reaching the running node.
"""

from __future__ import annotations

import asyncio
import shutil

import pytest

from libs.runtime.lab.errors import Missing
from libs.runtime.lab.events import NodeEvents
from libs.runtime.lab.netns import check_network_host
from libs.runtime.lab.rootfs import installed_kernel
from libs.runtime.lab.session import IMAGE, build_image
from libs.runtime.lab.stack import import_image
from tests.deploy.bootstack import containers, host_project, lab_node, wire
from tests.deploy.images import Built
from tests.e2e.bootlab import boot_and_check, require_firmware
from tests.needs import unavailable

IMPORT_TIMEOUT = 600.0


async def test_a_vm_boots_from_the_containers_through_the_host_network_override(
    docker: str, wolfpack_image: Built, tmp_path_factory: pytest.TempPathFactory
) -> None:
    try:
        check_network_host()
        installed_kernel()
    except Missing as missing:
        unavailable(str(missing))
    require_firmware("bios")
    workdir = tmp_path_factory.mktemp("compose-boot")
    # The import folder is bind-mounted at its own path in the builder: the tarball is there.
    tarball = await asyncio.to_thread(build_image, workdir)
    tap = wire()
    try:
        project = host_project(docker, wolfpack_image.tag, tap, workdir)
        async with containers(project, tap, workdir) as stack:
            events = await NodeEvents.connect(stack.nats_url)
            try:
                async with asyncio.timeout(IMPORT_TIMEOUT):
                    await import_image(stack, tarball, IMAGE)
                node = lab_node(tap, "cbios01", 10)
                async with asyncio.timeout(300):
                    timings = await boot_and_check(stack, events, workdir, node, "bios")
                print(f"containers: {timings.summary()}")
            finally:
                await events.close()
    finally:
        tap.delete()
        shutil.rmtree(workdir / "rootfs", ignore_errors=True)
