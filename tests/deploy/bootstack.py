"""The compose stack run to boot nodes (docker-compose.yml with docker-compose.host.yml) as the
lab's stack, beside a tap of the host's own: the boot test and bench/containers.py drive a
machine against it exactly as they do against `wolfpack up` in the lab."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

from libs.common import names
from libs.runtime.lab.console import LineLog
from libs.runtime.lab.machine import LabNode
from libs.runtime.lab.netns import HostTap
from libs.runtime.lab.session import IMAGE
from libs.runtime.lab.stack import LabStack
from tests.deploy.compose import HOST_NETWORK, RUNNING, Project, compose_cli
from tests.event_recorder import recording

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
            with recording(stack.nats_url):
                yield stack
        finally:
            await stack.stop()
    finally:
        await asyncio.to_thread(project.down, "-v")


def host_project(docker: str, image: str, tap: HostTap, import_dir: Path) -> Project:
    """The project that boots the machines on `tap`: DHCP on it (static leases, and a range
    for unknown machines), NATS from the wolfpack image (Docker Hub is out of reach here)."""
    return Project(
        name=f"wpboot{os.getpid()}",
        docker=docker,
        image=image,
        import_dir=import_dir,
        variables={
            "NATS_IMAGE": image,
            "WOLFPACK_DHCP": tap.tap,
            "WOLFPACK_IP": tap.ip,
            "WOLFPACK_DHCP_RANGE": f"{tap.host(100)},{tap.host(149)}",
            **PORTS,
        },
        files=HOST_NETWORK,
        running=(*RUNNING, "dhcp"),
    )


def lab_node(tap: HostTap, name: str, number: int) -> LabNode:
    """Node `name` at host number `number` of the tap's network, MAC 52:54:00:98:00:NN."""
    return LabNode(
        name=name,
        mac=f"52:54:00:98:00:{number:02x}",
        ip=tap.host(number),
        netmask=str(ipaddress.IPv4Interface(f"{tap.ip}/24").netmask),
        image=IMAGE,
    )
