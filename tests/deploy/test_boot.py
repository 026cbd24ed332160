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
import contextlib
import ipaddress
import os
import secrets
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from libs.common import names
from libs.runtime.lab.console import LineLog
from libs.runtime.lab.errors import Missing
from libs.runtime.lab.events import NodeEvents
from libs.runtime.lab.machine import LabNode
from libs.runtime.lab.netns import HostTap, check_network_host
from libs.runtime.lab.rootfs import installed_kernel
from libs.runtime.lab.session import IMAGE, build_image
from libs.runtime.lab.stack import LabStack, import_image
from tests.deploy.compose import HOST_NETWORK, RUNNING, Project, compose_cli
from tests.deploy.images import Built
from tests.e2e.bootlab import boot_and_check, require_firmware
from tests.needs import unavailable

IMPORT_TIMEOUT = 600.0
# Published on loopback at the design's ports, as a site would have them: the host-networked
# services reach NATS at 127.0.0.1:4222, and the lab's helpers find the APIs at theirs.
PORTS = {
    "WOLFPACK_REGISTRY_PORT": str(names.PORTS["registry"]),
    "WOLFPACK_BUILDER_PORT": str(names.PORTS["builder"]),
    "WOLFPACK_OVERLAYD_PORT": str(names.PORTS["overlayd"]),
    "WOLFPACK_NATS_PORT": str(names.NATS_PORT),
}


def wire() -> HostTap:
    """A tap with a random private /24 of this test's own."""
    subnet = f"10.{128 + secrets.randbelow(64)}.{secrets.randbelow(256)}"
    return HostTap.create(f"wpct{secrets.token_hex(3)}", f"{subnet}.1/24")


@contextlib.asynccontextmanager
async def containers(project: Project, tap: HostTap, workdir: Path) -> AsyncIterator[LabStack]:
    """The project up and healthy, as the lab's stack: DATA is the data volume's folder on
    this host, the log is every container's, followed."""
    try:
        await asyncio.to_thread(project.compose, "up", "-d", within=600)
        took = await asyncio.to_thread(project.wait_healthy)
        print(f"\ncompose (host networking): up -d to every container healthy in {took:.1f} s")
        volume = project.volume("wolfpack-data")
        mountpoint = project.docker_run(
            "volume", "inspect", "--format", "{{.Mountpoint}}", volume
        ).stdout.strip()
        data = Path(mountpoint)
        files = [arg for file in project.files for arg in ("-f", str(file))]
        follow = await asyncio.create_subprocess_exec(
            compose_cli(), "-p", project.name, *files, "logs", "-f", "--no-color",
            env=project.environment(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        assert follow.stdout is not None
        log = LineLog("the containers", copy_to=workdir / "containers.log")
        stack = LabStack(
            ns=tap,
            data=data,
            process=follow,
            log=log,
            token=(data / names.TOKEN_FILE).read_text().strip(),
            api_host="127.0.0.1",
            # wolfctl on the host: NATS where it is published (nats-auth's alias: the token).
            wolfctl_env={"WOLFPACK_NATS": f"nats://127.0.0.1:{names.NATS_PORT}"},
        )
        stack.pump = asyncio.create_task(log.pump(follow.stdout))
        try:
            yield stack
        finally:
            await stack.stop()
    finally:
        await asyncio.to_thread(project.down, "-v")


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
        dhcp_range = f"{tap.host(100)},{tap.host(149)}"
        project = Project(
            name=f"wpboot{os.getpid()}",
            docker=docker,
            image=wolfpack_image.tag,
            import_dir=workdir,
            variables={
                "NATS_IMAGE": wolfpack_image.tag,
                "WOLFPACK_DHCP": tap.tap,
                "WOLFPACK_IP": tap.ip,
                "WOLFPACK_DHCP_RANGE": dhcp_range,
                **PORTS,
            },
            files=HOST_NETWORK,
            running=(*RUNNING, "dhcp"),
        )
        async with containers(project, tap, workdir) as stack:
            events = await NodeEvents.connect(stack.nats_url)
            try:
                async with asyncio.timeout(IMPORT_TIMEOUT):
                    await import_image(stack, tarball, IMAGE)
                node = LabNode(
                    name="cbios01",
                    mac="52:54:00:98:00:0a",
                    ip=tap.host(10),
                    netmask=str(ipaddress.IPv4Interface(f"{tap.ip}/24").netmask),
                    image=IMAGE,
                )
                async with asyncio.timeout(300):
                    timings = await boot_and_check(stack, events, workdir, node, "bios")
                print(f"containers: {timings.summary()}")
            finally:
                await events.close()
    finally:
        tap.delete()
        shutil.rmtree(workdir / "rootfs", ignore_errors=True)
