"""An image through the builder container: the lab's image (busybox and this machine's Debian
kernel) handed over as a docker archive in the import folder (bind-mounted at the same path in
the builder), imported from the host with wolfctl, changed with `wolfctl image exec` inside
the builder container, rebuilt, and booted by a node's manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from libs.runtime.lab import rootfs
from libs.runtime.lab.errors import Missing
from tests.deploy.compose import DATA
from tests.deploy.stack import Stack
from tests.deploy.test_stack import manifest, wolfctl
from tests.needs import unavailable
from tests.waiting import eventually

NAME = "lab"


@pytest.fixture(scope="module")
def lab_archive(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lab image as `docker save` writes it, in the import folder."""
    folder = tmp_path_factory.mktemp("lab")
    try:
        tree = rootfs.build_rootfs(folder / "tree", rootfs.installed_kernel())
    except Missing as missing:
        unavailable(str(missing))
    tarball = rootfs.rootfs_tarball(tree, folder / "lab.tar")
    project = stack.project
    tag = f"{project.name}-lab:latest"
    project.docker_run("import", str(tarball), tag)
    archive = project.import_dir / "lab-docker.tar"
    try:
        project.docker_run("save", "-o", str(archive), tag)
    finally:
        project.docker_run("rmi", tag, check=False)
    return archive


async def test_an_archive_in_the_import_folder_is_imported_changed_and_booted(
    stack: Stack, lab_archive: Path
) -> None:
    out = await wolfctl(stack, "image", "import", f"docker-archive:{lab_archive}", NAME)
    assert f"image {NAME} built" in out, out
    first = await stack.image(NAME)
    assert first is not None and first.kernel_version == rootfs.installed_kernel().version

    # `image exec` where the rootfs is: in the builder container (mounts, then chroot).
    project = stack.project
    done = project.exec(
        "builder",
        "wolfctl",
        "image",
        "exec",
        NAME,
        "--",
        "/bin/sh",
        "-c",
        "echo changed > /etc/lab/message && cat /proc/1/comm",
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # /proc was bound in: the image saw a process table.
    assert done.stdout.strip().splitlines()[0], done.stdout
    rootfs_file = f"{DATA}/images/{NAME}/rootfs/{rootfs.LAB_FILE}"
    assert project.read("builder", rootfs_file) == "changed\n"

    second = await eventually(
        lambda: stack.image(NAME),
        "the image rebuilt after exec",
        within=300,
        until=lambda meta: meta is not None and meta.image_digest != first.image_digest,
    )
    # Nothing of the mounts is left in the builder container.
    mounts = project.read("builder", "/proc/self/mountinfo")
    assert f"/images/{NAME}/rootfs" not in mounts, mounts

    await wolfctl(stack, "node", "add", "labnode", "--image", NAME)
    found = await eventually(
        lambda: manifest(stack, "labnode"),
        "labnode's manifest naming the rebuilt image",
        within=120,
        until=lambda m: m is not None and m.image_digest == second.image_digest,
    )
    assert found.kernel_digest == second.kernel_digest
    listed = json.loads(await wolfctl(stack, "image", "list", "-o", "json"))
    assert NAME in {image["name"] for image in listed}
