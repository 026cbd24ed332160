"""Importing from every kind of source, checked against the exact expected tree."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from libs.common.errors import Invalid, NotFound
from services.builder.sources import (
    FetchOptions,
    ImportOptions,
    ImportProgress,
    import_rootfs,
    inspect_digest,
)
from tests.builder.sources.helpers import (
    OciRegistry,
    base_layer,
    base_tree,
    compress,
    directory,
    file,
    image_layout,
    layered_tree,
    multiplatform_layout,
    push,
    skopeo,
    snapshot,
    tar_bytes,
    upper_layers,
)

INSECURE = FetchOptions(insecure=True)


def layout_digest(layout: Path, tag: str) -> str:
    """The digest index.json gives `tag`: what an import of it must report."""
    index = json.loads((layout / "index.json").read_text())
    for desc in index["manifests"]:
        if desc["annotations"]["org.opencontainers.image.ref.name"] == tag:
            return str(desc["digest"])
    raise AssertionError(tag)


@pytest.fixture
def layered(tmp_path: Path) -> Path:
    """A three-layer image (whiteouts, an opaque dir, hardlinks across layers), tag v1."""
    return image_layout(
        tmp_path / "layout",
        [base_layer(), *upper_layers()],
        tag="v1",
        config={"Env": ["PATH=/bin"], "Entrypoint": ["/bin/init"], "Cmd": ["-v"]},
    )


async def test_registry_by_tag_then_by_digest(
    tmp_path: Path, oci_registry: OciRegistry, layered: Path
) -> None:
    await asyncio.to_thread(push, layered, "v1", f"{oci_registry.host}/test/layered:v1")
    ref = f"docker://{oci_registry.host}/test/layered:v1"
    dest = tmp_path / "images" / "layered"
    progress: list[ImportProgress] = []

    result = await import_rootfs(
        ref, dest, staging_root=tmp_path / "staging", fetch=INSECURE, on_progress=progress.append
    )

    assert snapshot(dest) == layered_tree()
    digest = layout_digest(layered, "v1")
    assert result.manifest_digest == digest == await inspect_digest(ref, INSECURE)
    assert result.source == ref
    assert result.platform == "linux/amd64"
    assert result.config.env == ["PATH=/bin"]
    assert result.config.entrypoint == ["/bin/init"]
    assert result.config.cmd == ["-v"]
    assert result.files == sum(1 for v in layered_tree().values() if v[0] != "dir")
    phases = [p.phase for p in progress]
    assert phases[0] == "fetch" and phases[-1] == "swap"
    assert phases.index("verify") < phases.index("extract")
    assert progress[-1].files_done == result.files

    by_digest = f"docker://{oci_registry.host}/test/layered@{digest}"
    again = await import_rootfs(by_digest, dest, staging_root=tmp_path / "staging", fetch=INSECURE)
    assert again.manifest_digest == digest
    assert snapshot(dest) == layered_tree()


async def test_registry_multiplatform_index(tmp_path: Path, oci_registry: OciRegistry) -> None:
    layout = multiplatform_layout(
        tmp_path / "multi",
        {
            "amd64": [[file("arch", b"amd64\n"), file("common", b"same\n")]],
            "arm64": [[file("arch", b"arm64\n"), file("common", b"same\n")]],
        },
        tag="v1",
    )
    await asyncio.to_thread(push, layout, "v1", f"{oci_registry.host}/test/multi:v1")
    ref = f"docker://{oci_registry.host}/test/multi:v1"
    staging = tmp_path / "staging"

    arm = await import_rootfs(
        ref, tmp_path / "arm", staging_root=staging,
        fetch=FetchOptions(insecure=True, platform="linux/arm64"),
    )  # fmt: skip
    amd = await import_rootfs(ref, tmp_path / "amd", staging_root=staging, fetch=INSECURE)

    assert (tmp_path / "arm" / "arch").read_bytes() == b"arm64\n"
    assert (tmp_path / "amd" / "arch").read_bytes() == b"amd64\n"
    assert arm.platform == "linux/arm64" and amd.platform == "linux/amd64"
    # Both name the index that was pushed; each got its own platform's manifest.
    assert arm.manifest_digest == amd.manifest_digest == layout_digest(layout, "v1")
    assert arm.image_manifest_digest != amd.image_manifest_digest
    with pytest.raises(NotFound, match=r"no image for the wanted platform.*s390x"):
        await import_rootfs(
            ref, tmp_path / "s390x", staging_root=staging,
            fetch=FetchOptions(insecure=True, platform="linux/s390x"),
        )  # fmt: skip


async def test_oci_layout_in_place(tmp_path: Path, layered: Path) -> None:
    result = await import_rootfs(f"oci:{layered}:v1", tmp_path / "img", staging_root=tmp_path / "s")
    assert snapshot(tmp_path / "img") == layered_tree()
    assert result.manifest_digest == layout_digest(layered, "v1")
    # The only image of a layout needs no tag.
    await import_rootfs(f"oci:{layered}", tmp_path / "img", staging_root=tmp_path / "s")
    assert snapshot(tmp_path / "img") == layered_tree()


async def test_oci_layout_multiplatform_in_place(tmp_path: Path) -> None:
    layout = multiplatform_layout(
        tmp_path / "multi",
        {"amd64": [[file("arch", b"amd64\n")]], "arm64": [[file("arch", b"arm64\n")]]},
        tag="v2",
    )
    arm64 = FetchOptions(platform="linux/arm64")
    await import_rootfs(
        f"oci:{layout}:v2", tmp_path / "img", staging_root=tmp_path / "s", fetch=arm64
    )
    assert (tmp_path / "img" / "arch").read_bytes() == b"arm64\n"


async def test_oci_archive(tmp_path: Path, layered: Path) -> None:
    archive = tmp_path / "image.oci.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(layered, arcname=".")
    result = await import_rootfs(
        f"oci-archive:{archive}:v1", tmp_path / "img", staging_root=tmp_path / "s"
    )
    assert snapshot(tmp_path / "img") == layered_tree()
    assert result.manifest_digest == await inspect_digest(f"oci-archive:{archive}:v1")


async def test_docker_archive(tmp_path: Path, layered: Path) -> None:
    archive = tmp_path / "saved.tar"
    await asyncio.to_thread(
        skopeo, "copy", f"oci:{layered}:v1", f"docker-archive:{archive}:test/layered:v1"
    )
    result = await import_rootfs(
        f"docker-archive:{archive}", tmp_path / "img", staging_root=tmp_path / "s"
    )
    assert snapshot(tmp_path / "img") == layered_tree()
    assert result.config.entrypoint == ["/bin/init"]
    assert result.manifest_digest is not None


@pytest.mark.parametrize(
    ("suffix", "compression"),
    [
        (".tar", None),
        (".tar.gz", "gzip"),
        (".tgz", "gzip"),
        (".tar.zst", "zstd"),
        (".tar.xz", "xz"),
    ],
)
async def test_rootfs_tarball(tmp_path: Path, suffix: str, compression: str | None) -> None:
    tarball = tmp_path / f"rootfs{suffix}"
    tarball.write_bytes(compress(tar_bytes(base_layer()), compression))
    result = await import_rootfs(str(tarball), tmp_path / "img", staging_root=tmp_path / "s")
    assert snapshot(tmp_path / "img") == base_tree()
    assert result.manifest_digest is None
    files = [v for k, v in base_tree().items() if v[0] == "file" and k != "usr/bin/ping6"]
    contents = [v[4] for v in files]  # ping6 shares ping's inode: counted once
    assert result.bytes == sum(len(data) for data in contents if isinstance(data, bytes))


def gnu_tar_extract(tarball: Path, dest: Path) -> None:
    """Make a chroot with GNU tar, independent of the code under test."""
    dest.mkdir()
    subprocess.run(
        [
            "tar",
            "--xattrs",
            "--xattrs-include=*",
            "--same-owner",
            "-xpf",
            str(tarball),
            "-C",
            str(dest),
        ],
        check=True,
    )


async def test_chroot_directory(tmp_path: Path) -> None:
    tarball = tmp_path / "rootfs.tar"
    tarball.write_bytes(tar_bytes(base_layer()))
    chroot = tmp_path / "chroot"
    await asyncio.to_thread(gnu_tar_extract, tarball, chroot)
    assert snapshot(chroot) == base_tree()  # the fixture itself is right

    result = await import_rootfs(str(chroot), tmp_path / "img", staging_root=tmp_path / "s")

    assert snapshot(tmp_path / "img") == base_tree()
    assert result.files == sum(1 for v in base_tree().values() if v[0] != "dir")


async def test_chroot_refuses_root_and_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "srv" / "data"
    data.mkdir(parents=True)
    staging = tmp_path / "s"
    with pytest.raises(Invalid, match="host's /"):
        await import_rootfs("/", tmp_path / "img", staging_root=staging)
    with pytest.raises(Invalid, match="contains wolfpack's own"):
        await import_rootfs(
            str(tmp_path / "srv"), tmp_path / "img", staging_root=staging,
            options=ImportOptions(forbidden=(str(data),)),
        )  # fmt: skip
    assert not (tmp_path / "img").exists()


async def test_cancelled_import_leaves_nothing(tmp_path: Path) -> None:
    tarball = tmp_path / "many.tar.gz"
    entries = [directory("d")] + [file(f"d/f{n}", b"x" * 100) for n in range(20_000)]
    tarball.write_bytes(tar_bytes(entries, "gzip"))
    dest = tmp_path / "img"
    dest.mkdir()
    (dest / "kept").write_text("previous image\n")
    staging = tmp_path / "s"
    seen: list[ImportProgress] = []

    def cancel_once_extracting(progress: ImportProgress) -> None:
        seen.append(progress)
        if progress.phase == "extract" and len(seen) == 1:
            task.cancel()

    task = asyncio.create_task(
        import_rootfs(str(tarball), dest, staging_root=staging, on_progress=cancel_once_extracting)
    )
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen[-1].files_done < len(entries)
    assert os.listdir(dest) == ["kept"]
    assert os.listdir(staging) == []  # the worker thread had stopped before the clean-up
