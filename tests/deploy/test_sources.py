"""The builder container imports from the other kinds of source a site hands it: an OCI archive
in the import folder, and a registry. The registry is a real docker-registry (Debian's) on
this host, listening on the gateway address of the project's own network, which is where a
container on that network reaches the host; the image is pushed there with skopeo."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from libs.common.bus.server import free_port
from tests.builder.conftest import REGISTRY_BIN
from tests.builder.helpers import busybox_rootfs, tarball
from tests.builder.sources.helpers import OciRegistry
from tests.deploy.stack import Stack
from tests.deploy.test_stack import wolfctl
from tests.needs import need_command


@pytest.fixture(scope="module")
def docker_archive(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small busybox image as `docker save` writes it (outside the import folder)."""
    folder = tmp_path_factory.mktemp("sources")
    rootfs = tarball(busybox_rootfs(folder / "tree"), folder / "busybox.tar.gz")
    project = stack.project
    tag = f"{project.name}-busybox:latest"
    project.docker_run("import", str(rootfs), tag)
    archive = folder / "busybox-docker.tar"
    try:
        project.docker_run("save", "-o", str(archive), tag)
    finally:
        project.docker_run("rmi", tag, check=False)
    return archive


def skopeo_copy(source: str, target: str) -> None:
    skopeo = need_command("skopeo", "skopeo")
    done = subprocess.run(
        [skopeo, "copy", "--quiet", "--dest-tls-verify=false", source, target],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def gateway_registry(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """HOST:PORT of a plain-HTTP docker-registry the builder container reaches."""
    binary = need_command(REGISTRY_BIN, "docker-registry")
    project = stack.project
    network = f"{project.name}_default"
    gateway = project.docker_run(
        "network", "inspect", "-f", "{{(index .IPAM.Config 0).Gateway}}", network
    ).stdout.strip()
    assert gateway, f"{network} has no gateway address"
    folder = tmp_path_factory.mktemp("gateway-registry")
    host = f"{gateway}:{free_port(gateway)}"
    config = folder / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: error\n"
        f"storage:\n  filesystem:\n    rootdirectory: {folder / 'storage'}\n"
        f"http:\n  addr: {host}\n"
    )
    with (folder / "registry.log").open("wb") as log:
        process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=log)
    registry = OciRegistry.started(host, process, folder / "registry.log")
    try:
        yield registry.host
    finally:
        process.terminate()
        process.wait(10)


async def test_an_oci_archive_in_the_import_folder(stack: Stack, docker_archive: Path) -> None:
    archive = stack.project.import_dir / "busybox-oci.tar"
    await asyncio.to_thread(
        skopeo_copy, f"docker-archive:{docker_archive}", f"oci-archive:{archive}"
    )
    out = await wolfctl(stack, "image", "import", f"oci-archive:{archive}", "from-oci")
    assert "image from-oci built" in out, out
    meta = await stack.image("from-oci")
    assert meta is not None and meta.source == f"oci-archive:{archive}"


async def test_a_registry_the_container_reaches(
    stack: Stack, docker_archive: Path, gateway_registry: str
) -> None:
    reference = f"{gateway_registry}/site/busybox:v1"
    await asyncio.to_thread(
        skopeo_copy, f"docker-archive:{docker_archive}", f"docker://{reference}"
    )
    source = f"docker://{reference}"
    out = await wolfctl(stack, "image", "import", "--insecure", source, "from-registry")
    assert "image from-registry built" in out, out
    meta = await stack.image("from-registry")
    assert meta is not None and meta.source == source and meta.source_digest
