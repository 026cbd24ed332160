"""Bad input through the builder service and wolfctl: corrupt and truncated archives, an
unknown reference, a wrong digest, an unreachable registry, a full disk. Each ends in a
`failed` event and a one-line CLI error; the image that was there stays as it was (KV,
rootfs, blobs) and no half-written staging folder or blob is left."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from libs.common.bus.server import free_port
from libs.common.models.image import ImageMeta
from tests.builder.helpers import (
    Builder,
    Watcher,
    blob,
    busybox_rootfs,
    import_image,
    launch_builder,
    leftovers,
    read_kv,
    tarball,
    watching,
    wolfctl,
)
from tests.builder.sources.helpers import OciRegistry, directory, file, image_layout, push
from tests.builder.vnfs.helpers import describe
from tests.needs import tmpfs
from tests.stack import start_nats, stop_process

NAME = "victim"


@dataclass
class Good:
    meta: ImageMeta
    tree: dict[str, tuple[object, ...]]


async def good_image(builder: Builder, busybox_tarball: Path) -> Good:
    """Image NAME as a good import left it (imported once per builder)."""
    meta = await read_kv(builder.nats_url, NAME)
    if meta is None:
        async with builder.client() as api, watching(builder.nats_url) as events:
            built = await import_image(api, events, name=NAME, source=str(busybox_tarball))
            assert built.__class__.__name__ == "ImageBuilt", built
        meta = await read_kv(builder.nats_url, NAME)
        assert meta is not None
    return Good(meta, describe(builder.data / "images" / NAME / "rootfs"))


async def refused(
    builder: Builder, events: Watcher, good: Good, source: str, words: str, *flags: str
) -> str:
    """Import `source` over the good image with wolfctl; check all stayed; the failure."""
    done = await wolfctl(builder, "image", "import", source, NAME, *flags)
    assert done.returncode == 1, done
    last = done.stderr.splitlines()[-1]
    assert last.startswith(f"wolfctl: error: image {NAME}: ") and words in last, last
    assert "Traceback" not in done.stderr
    _, failed = await events.wait(NAME, ("failed",))
    assert words in failed.reason and last.endswith(failed.reason)
    assert await read_kv(builder.nats_url, NAME) == good.meta
    check_unchanged(builder.data, good)
    return failed.reason


def check_unchanged(data: Path, good: Good) -> None:
    assert describe(data / "images" / NAME / "rootfs") == good.tree
    assert blob(data, good.meta.image_digest).is_file()
    assert blob(data, good.meta.kernel_digest).is_file()
    assert leftovers(data) == []


def truncated(source: Path, dest: Path) -> Path:
    data = source.read_bytes()
    dest.write_bytes(data[: len(data) // 2])
    return dest


async def test_corrupt_and_truncated_archives(
    builder: Builder, events: Watcher, busybox_tarball: Path, tmp_path: Path
) -> None:
    good = await good_image(builder, busybox_tarball)
    half = await asyncio.to_thread(truncated, busybox_tarball, tmp_path / "half.tar.gz")
    await refused(builder, events, good, str(half), "corrupt or truncated archive")

    events.events.clear()
    garbage = tmp_path / "garbage.tar"
    await asyncio.to_thread(garbage.write_bytes, os.urandom(10_000))
    await refused(builder, events, good, str(garbage), "corrupt or truncated archive")


async def test_unknown_reference_and_wrong_digest(
    builder: Builder,
    events: Watcher,
    busybox_tarball: Path,
    oci_registry: OciRegistry,
    tmp_path: Path,
) -> None:
    good = await good_image(builder, busybox_tarball)
    layer = [directory("boot"), file("boot/vmlinuz-1.0", b"k")]
    layout = image_layout(tmp_path / "layout", [layer], tag="v1")
    await asyncio.to_thread(push, layout, "v1", f"{oci_registry.host}/bad/known:v1")

    missing_tag = f"docker://{oci_registry.host}/bad/known:nope"
    await refused(builder, events, good, missing_tag, "no such image or tag", "--insecure")
    events.events.clear()
    wrong_digest = f"docker://{oci_registry.host}/bad/known@sha256:{'0' * 64}"
    await refused(builder, events, good, wrong_digest, "no such image or tag", "--insecure")
    events.events.clear()
    missing_repo = f"docker://{oci_registry.host}/bad/never-pushed:v1"
    await refused(builder, events, good, missing_repo, "no such", "--insecure")


async def test_unreachable_registry(
    builder: Builder, events: Watcher, busybox_tarball: Path
) -> None:
    good = await good_image(builder, busybox_tarball)
    closed = f"docker://127.0.0.1:{free_port()}/bad/image:v1"
    reason = await refused(builder, events, good, closed, "registry unreachable", "--insecure")
    assert "connection refused" in reason


# -- a full disk: DATA on a tiny tmpfs -------------------------------------------------------

TMPFS_SIZE = "40m"


@pytest.fixture
def tiny_builder(tmp_path: Path) -> Iterator[Builder]:
    """A builder whose DATA is a 40 MiB tmpfs (root needed to mount it)."""
    with (
        tmpfs(tmp_path / "data", f"size={TMPFS_SIZE}") as data,
        start_nats(tmp_path / "nats") as server,
    ):
        builder = launch_builder(data, server.url)
        try:
            yield builder
        finally:
            stop_process(builder.process)


def filled_tarball(folder: Path, megabytes: int) -> Path:
    """A good tree plus `megabytes` of incompressible data."""
    tree = busybox_rootfs(folder / f"tree-{megabytes}")
    (tree / "srv").mkdir()
    for number in range(megabytes):
        (tree / "srv" / f"blob-{number:03d}").write_bytes(os.urandom(1 << 20))
    return tarball(tree, folder / f"filled-{megabytes}.tar.gz")


async def test_a_full_disk_while_unpacking_and_while_building(
    tiny_builder: Builder, busybox_tarball: Path, tmp_path: Path
) -> None:
    builder = tiny_builder
    async with watching(builder.nats_url) as events:
        good = await good_image(builder, busybox_tarball)

        # 60 MiB cannot even be unpacked on 40 MiB.
        huge = await asyncio.to_thread(filled_tarball, tmp_path, 60)
        reason = await refused(builder, events, good, str(huge), "no space left")
        assert "free space in the data folder" in reason

        # 20 MiB unpacks, but its image does not fit beside it.
        events.events.clear()
        big = await asyncio.to_thread(filled_tarball, tmp_path, 20)
        await refused(builder, events, good, str(big), "no space left")
        _, failed = await events.wait(NAME, ("failed",))
        assert failed.phase in ("compress", "assemble")

        # With room again, the builder carries on.
        events.events.clear()
        done = await wolfctl(builder, "image", "import", str(busybox_tarball), "after")
        assert done.returncode == 0, done.stderr
