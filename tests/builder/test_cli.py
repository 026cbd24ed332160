"""`wolfctl image` against a real builder, run as a user runs it: a process, its output, its
exit code. `exec` and `shell` chroot into the image on this machine (root needed)."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import msgspec
import yaml

from libs.common.models.image import ImageDetails, ImageJob, ImageMeta
from tests.builder.helpers import (
    Builder,
    Watcher,
    busybox_rootfs,
    import_image,
    mounted_below,
    read_kv,
    tarball,
    unpacked_image,
    wolfctl,
)
from tests.cli import REPO
from tests.needs import need_root


def needs_root() -> None:
    need_root("image exec/shell (mount and chroot)")


def relative_to_repo(path: Path) -> str:
    """`path` as seen from the folder wolfctl runs in (the repository)."""
    return os.path.relpath(path, REPO)


def rootfs_of(builder: Builder, name: str) -> Path:
    return builder.data / "images" / name / "rootfs"


async def test_import_list_show_delete(
    builder: Builder, busybox_tarball: Path, tmp_path: Path
) -> None:
    done = await wolfctl(builder, "image", "import", str(busybox_tarball), "cli-one")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("image cli-one built: ") and "kernel 1.0.0" in done.stdout
    # Not a terminal: one line per phase on stderr instead of a bar.
    assert "cli-one: unpacking" in done.stderr and "cli-one: compressing" in done.stderr

    listed = await wolfctl(builder, "image", "list")
    assert listed.returncode == 0
    header, _, *rows = listed.stdout.splitlines()
    assert header.split()[:3] == ["IMAGE", "NAME", "KERNEL"]
    assert any(row.split()[0] == "cli-one" and str(busybox_tarball) in row for row in rows)

    as_yaml = await wolfctl(builder, "image", "list", "-o", "yaml")
    assert "cli-one" in [image["name"] for image in yaml.safe_load(as_yaml.stdout)]

    shown = await wolfctl(builder, "image", "show", "cli-one", "-o", "json")
    details = msgspec.json.decode(shown.stdout, type=ImageDetails)
    assert details.rootfs == str(rootfs_of(builder, "cli-one"))
    assert details.job is not None and details.job.state == "built"
    table = await wolfctl(builder, "image", "show", "cli-one")
    assert f"rootfs          {details.rootfs}" in table.stdout

    refused = await wolfctl(builder, "image", "delete", "cli-one")  # no --yes, no terminal
    assert refused.returncode != 0 and await read_kv(builder.nats_url, "cli-one") is not None
    deleted = await wolfctl(builder, "image", "delete", "--yes", "cli-one")
    assert deleted.returncode == 0, deleted.stderr
    assert await read_kv(builder.nats_url, "cli-one") is None
    gone = await wolfctl(builder, "image", "show", "cli-one")
    assert (
        gone.returncode == 1 and gone.stderr == "wolfctl: error: name: no image named 'cli-one'\n"
    )


async def test_relative_paths_are_made_absolute_and_no_wait_returns_the_job(
    builder: Builder, busybox_tarball: Path, events: Watcher
) -> None:
    relative = relative_to_repo(busybox_tarball)
    done = await wolfctl(
        builder, "-o", "json", "image", "import", relative, "cli-nowait", "--no-wait"
    )
    assert done.returncode == 0, done.stderr
    job = msgspec.json.decode(done.stdout, type=ImageJob)
    assert job.source == str(busybox_tarball)  # the builder gets the path wolfctl's folder meant
    end = await events.end_of("cli-nowait", job.id)
    assert end.__class__.__name__ == "ImageBuilt"


async def test_a_failed_import_is_one_line_and_exit_1(builder: Builder, tmp_path: Path) -> None:
    done = await wolfctl(builder, "image", "import", str(tmp_path / "missing.tar.gz"), "cli-bad")
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        f"wolfctl: error: image cli-bad: {tmp_path / 'missing.tar.gz'}: no such file"
    )
    usage = await wolfctl(builder, "image", "import", str(tmp_path / "x.tar"), "bad/name")
    assert usage.returncode == 1 and "not a valid image name" in usage.stderr


async def test_exec_changes_the_rootfs_then_rebuilds(
    builder: Builder, api: httpx.AsyncClient, events: Watcher, busybox_tarball: Path, tmp_path: Path
) -> None:
    needs_root()
    first = await import_image(api, events, name="cli-exec", source=str(busybox_tarball))
    script = "echo hi > /etc/motd && test -e /proc/self/status && test -c /dev/null"
    done = await wolfctl(builder, "image", "exec", "cli-exec", "--", "sh", "-c", script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("image cli-exec built: ")
    meta = await read_kv(builder.nats_url, "cli-exec")
    assert meta is not None and meta.image_digest != first.image_digest
    check_motd(builder, meta, tmp_path / "unpacked", "hi\n")


def check_motd(builder: Builder, meta: ImageMeta, into: Path, text: str) -> None:
    rootfs = rootfs_of(builder, meta.name)
    assert (unpacked_image(builder.data, meta.image_digest, into) / "etc/motd").read_text() == text
    assert mounted_below(rootfs) == []
    assert list((rootfs / "proc").iterdir()) == [] and list((rootfs / "dev").iterdir()) == []
    assert (rootfs / "etc/resolv.conf").read_text() == "# the image's own\n"


async def test_a_failing_command_unmounts_and_does_not_rebuild(
    builder: Builder, api: httpx.AsyncClient, events: Watcher, busybox_tarball: Path
) -> None:
    needs_root()
    await import_image(api, events, name="cli-fail", source=str(busybox_tarball))
    before = await read_kv(builder.nats_url, "cli-fail")
    done = await wolfctl(builder, "image", "exec", "cli-fail", "--", "sh", "-c", "exit 3")
    assert done.returncode == 1
    assert "the command exited with 3; image cli-fail not rebuilt" in done.stderr
    assert await read_kv(builder.nats_url, "cli-fail") == before
    assert mounted_below(rootfs_of(builder, "cli-fail")) == []

    # --no-build changes the rootfs only; `image build` then takes the change in.
    done = await wolfctl(
        builder, "image", "exec", "--no-build", "cli-fail", "--", "sh", "-c", "echo no > /etc/motd"
    )
    assert done.returncode == 0 and done.stdout == ""
    assert await read_kv(builder.nats_url, "cli-fail") == before
    built = await wolfctl(builder, "image", "build", "cli-fail")
    assert built.returncode == 0, built.stderr
    assert (await read_kv(builder.nats_url, "cli-fail")) != before


async def test_shell_reads_commands_and_the_environment_is_clean(
    builder: Builder, api: httpx.AsyncClient, events: Watcher, busybox_tarball: Path, tmp_path: Path
) -> None:
    needs_root()
    await import_image(api, events, name="cli-shell", source=str(busybox_tarball))
    commands = "env > /root/env\necho shell > /etc/motd\nexit 0\n"
    done = await wolfctl(builder, "image", "shell", "cli-shell", stdin=commands)
    assert done.returncode == 0, done.stderr
    env = (rootfs_of(builder, "cli-shell") / "root/env").read_text()
    assert "WOLFPACK_TOKEN" not in env and builder.token not in env
    assert "WOLFPACK_IMAGE=cli-shell" in env
    meta = await read_kv(builder.nats_url, "cli-shell")
    assert meta is not None
    check_motd(builder, meta, tmp_path / "unpacked", "shell\n")


async def test_mount_points_that_leave_the_image_are_refused(
    builder: Builder, api: httpx.AsyncClient, events: Watcher, tmp_path: Path
) -> None:
    needs_root()
    tree = busybox_rootfs(tmp_path / "tree")
    (tree / "proc").rmdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (tree / "proc").symlink_to(outside)
    (tree / "etc/resolv.conf").unlink()
    (tree / "etc/resolv.conf").symlink_to("/run/systemd/resolve/stub-resolv.conf")
    await import_image(api, events, name="cli-evil", source=str(tarball(tree, tmp_path / "e.tgz")))
    done = await wolfctl(builder, "image", "exec", "cli-evil", "--", "true")
    assert done.returncode == 1 and "/proc in the image is a symlink" in done.stderr
    assert list(outside.iterdir()) == [] and mounted_below(outside) == []

    # A resolver symlink only costs the command its DNS.
    (tree / "proc").unlink()
    (tree / "proc").mkdir()
    await import_image(api, events, name="cli-evil", source=str(tarball(tree, tmp_path / "f.tgz")))
    done = await wolfctl(builder, "image", "exec", "cli-evil", "--no-build", "--", "true")
    assert done.returncode == 0, done.stderr
    assert "/etc/resolv.conf not bound into the image" in done.stderr
