"""The issue's check, as an administrator runs it: `wolfpack up`, then wolfctl.

A rootfs of busybox-static plus this machine's Debian kernel and its modules, packed as a
.tar.gz and imported: KV `images` has every field, the image holds every file but /boot, the
kernel blob is byte-identical to /boot/vmlinuz-* and its version matches. A tar with `../`
entries is refused and the good image stays. `image exec` edits one file; the rebuild holds
the change, reuses most chunks and takes a fraction of the first build's time.
"""

from __future__ import annotations

import asyncio
import io
import subprocess
import tarfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest

from libs.common.models.image import ImageBuilt, ImageDetails, ImageMeta

# The builder tests' helpers (tests/builder is not a package; e2e tests borrow from it).
from tests.builder.helpers import (
    Watcher,
    add_real_kernel,
    blob,
    busybox_rootfs,
    leftovers,
    mounted_below,
    read_kv,
    tarball,
    unpacked_image,
    watching,
)
from tests.builder.vnfs.helpers import describe
from tests.cli import run_cli_async
from tests.stack import UpStack, start_up

NAME = "bb-debian"
IMPORT_PHASES = {"extract", "swap", "kernel", "scan", "compress", "assemble"}


@dataclass
class Imported:
    stack: UpStack
    tree: Path
    kernel: Path
    version: str
    first: ImageBuilt
    phases: set[str]


async def wolfctl(stack: UpStack, *args: str) -> subprocess.CompletedProcess[str]:
    """wolfctl as a user runs it: it finds the builder and NATS from DATA/endpoints.json."""
    return await run_cli_async("wolfctl", *args, env={"WOLFPACK_DATA": str(stack.data)}, within=600)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpStack]:
    with start_up(tmp_path_factory.mktemp("up") / "data") as running:
        yield running


@pytest.fixture
async def events(stack: UpStack) -> AsyncIterator[Watcher]:
    async with watching(stack.nats_url) as watcher:
        yield watcher


@pytest.fixture(scope="module")
def source_tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str, Path]:
    folder = tmp_path_factory.mktemp("image")
    tree = busybox_rootfs(folder / "tree", kernel=None)
    kernel, version = add_real_kernel(tree)
    return tree, kernel, version, tarball(tree, folder / "busybox-debian.tar.gz")


@pytest.fixture(scope="module")
def imported(stack: UpStack, source_tree: tuple[Path, Path, str, Path]) -> Imported:
    tree, kernel, version, archive = source_tree

    async def run() -> Imported:
        async with watching(stack.nats_url) as watcher:
            done = await wolfctl(stack, "image", "import", str(archive), NAME)
            assert done.returncode == 0, done.stderr
            assert f"image {NAME} built" in done.stdout
            _, built = await watcher.wait(NAME, ("built",))
            phases = {p.phase for p in watcher.of(NAME, "progress", job=built.job)}
        return Imported(stack, tree, kernel, version, built, phases)

    return asyncio.run(run())


async def test_import_holds_every_file_but_boot_and_the_kernel_as_is(
    imported: Imported, tmp_path: Path
) -> None:
    stack = imported.stack
    meta = await read_kv(stack.nats_url, NAME)
    assert meta is not None
    # Every field DESIGN.md names, filled in.
    assert meta.name == NAME and meta.source.endswith("busybox-debian.tar.gz")
    assert len(meta.image_digest) == 64 and len(meta.kernel_digest) == 64
    assert meta.kernel_version == imported.version
    assert meta.size == blob(stack.data, meta.image_digest).stat().st_size > 0
    assert meta.built_at > 0 and meta.revision >= 1
    assert meta.image_digest == imported.first.image_digest
    # At least one progress event per phase, before `built`.
    assert imported.phases >= IMPORT_PHASES

    check_image(imported, meta, tmp_path / "unpacked")

    shown = await wolfctl(stack, "image", "show", NAME, "-o", "json")
    assert shown.returncode == 0, shown.stderr
    details = msgspec.json.decode(shown.stdout, type=ImageDetails)
    assert details.rootfs == str(stack.data / "images" / NAME / "rootfs")
    assert details.image_digest == meta.image_digest


def check_image(imported: Imported, meta: ImageMeta, into: Path) -> None:
    data = imported.stack.data
    # The kernel blob is the very file the image shipped.
    assert blob(data, meta.kernel_digest).read_bytes() == imported.kernel.read_bytes()
    # Unpacked the kernel's way, the image is the tree minus the excluded /boot.
    unpacked = unpacked_image(data, meta.image_digest, into)
    assert not (unpacked / "boot").exists()
    assert describe(unpacked) == describe(imported.tree, skip=frozenset({"boot"}))
    assert (Path(data / "images" / NAME / "rootfs") / "bin/busybox").is_file()


def hostile_tarball(path: Path) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in (("etc/fine", b"fine\n"), ("../escaped", b"gotcha\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


async def test_tar_with_dotdot_is_refused_and_the_good_image_stays(
    imported: Imported, events: Watcher, tmp_path: Path
) -> None:
    stack = imported.stack
    before = await read_kv(stack.nats_url, NAME)
    assert before is not None
    rootfs = stack.data / "images" / NAME / "rootfs"
    tree_before = describe(rootfs)

    evil = hostile_tarball(tmp_path / "evil.tar.gz")
    done = await wolfctl(stack, "image", "import", str(evil), NAME)
    assert done.returncode != 0
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith("wolfctl: error:") and "escapes the image root" in error
    _, failed = await events.wait(NAME, ("failed",))
    assert "'../escaped'" in failed.reason and failed.phase == "extract"

    after = await read_kv(stack.nats_url, NAME)
    assert after == before  # same digests, same revision
    assert describe(rootfs) == tree_before
    assert not any(stack.data.rglob("escaped")) and not (tmp_path / "escaped").exists()
    assert leftovers(stack.data) == []


async def test_exec_then_rebuild_holds_the_change_and_reuses_the_other_chunks(
    imported: Imported, events: Watcher, tmp_path: Path
) -> None:
    stack = imported.stack
    before = await read_kv(stack.nats_url, NAME)
    assert before is not None

    done = await wolfctl(stack, "image", "exec", NAME, "--", "sh", "-c", "echo hi > /etc/motd")
    assert done.returncode == 0, done.stderr
    _, rebuilt = await events.wait(NAME, ("built",))
    assert rebuilt.kind == "build" and rebuilt.image_digest != before.image_digest

    meta = await read_kv(stack.nats_url, NAME)
    assert isinstance(meta, ImageMeta) and meta.image_digest == rebuilt.image_digest
    assert meta.kernel_digest == before.kernel_digest
    check_change(imported, meta, tmp_path / "unpacked")

    first = imported.first
    print(
        f"\nfirst build {first.build_seconds:.2f} s ({first.chunks_total} chunks); "
        f"rebuild after exec {rebuilt.build_seconds:.2f} s "
        f"({rebuilt.chunks_reused}/{rebuilt.chunks_total} chunks reused)"
    )
    # What makes a rebuild fast: only the chunks the change touched are made again. How fast
    # it is, against a full build, is measured by bench/build.py.
    assert rebuilt.chunks_reused >= rebuilt.chunks_total - 2 > 0


def check_change(imported: Imported, meta: ImageMeta, into: Path) -> None:
    unpacked = unpacked_image(imported.stack.data, meta.image_digest, into)
    assert (unpacked / "etc/motd").read_text() == "hi\n"
    assert describe(unpacked, skip=frozenset({"etc"})) == describe(
        imported.tree, skip=frozenset({"boot", "etc"})
    )
    # Nothing of the chroot's mounts is left in the image or on the host.
    rootfs = imported.stack.data / "images" / NAME / "rootfs"
    assert list((rootfs / "proc").iterdir()) == [] and list((rootfs / "dev").iterdir()) == []
    assert mounted_below(rootfs) == []
