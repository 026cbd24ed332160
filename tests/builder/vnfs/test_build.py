"""A built image, unpacked the way the kernel unpacks it, is the source tree minus the excludes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from libs.common.errors import Conflict
from libs.common.store.cas import ContentStore
from services.builder.vnfs import BuildProgress, ChunkSettings, build_image
from services.builder.vnfs.compress import Codec
from tests.builder.vnfs.helpers import (
    describe,
    hardlink_sets,
    make_tree,
    members,
    records,
    unpack,
    write,
)

KiB = 1 << 10
# Small chunks so that a tree of a few MB spreads over many of them.
SMALL = ChunkSettings(min_size=16 * KiB, avg_size=64 * KiB, max_size=256 * KiB)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    make_tree(root)
    return root


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    return ContentStore(tmp_path / "cas")


def run(command: list[str], stdin: bytes = b"", cwd: Path | None = None) -> bytes:
    return subprocess.run(command, input=stdin, cwd=cwd, check=True, capture_output=True).stdout


def sparse_file(path: Path, size: int) -> None:
    with open(path, "wb") as sparse:
        sparse.truncate(size)


def image_bytes(store: ContentStore, digest: str) -> bytes:
    with store.open(digest) as blob:
        return blob.read()


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
async def test_unpacked_image_equals_source(
    tree: Path, store: ContentStore, tmp_path: Path, codec: Codec
) -> None:
    result = await build_image(
        tree,
        store,
        index_path=tmp_path / "chunks.json",
        compression=codec,
        chunking=SMALL,
    )
    image = image_bytes(store, result.image_digest)
    assert len(image) == result.size
    assert result.chunks_total > 5 and result.chunks_reused == 0

    unpacked = tmp_path / "unpacked"
    codecs = unpack(image, unpacked)
    assert set(codecs) == {codec} and len(codecs) == result.chunks_total

    assert describe(unpacked) == describe(tree)
    assert (
        hardlink_sets(unpacked)
        == hardlink_sets(tree)
        == {
            frozenset({"usr/bin/suid", "usr/bin/suid-again"}),
            frozenset({"srv/compressible.txt", "etc/compressible-copy"}),
            frozenset({"a/three-names", "b/second", "z/third"}),
        }
    )
    # the root itself carries the image's mode
    assert os.stat(unpacked).st_mode & 0o7777 == os.stat(tree).st_mode & 0o7777


async def test_device_nodes_and_special_modes_survive(
    tree: Path, store: ContentStore, tmp_path: Path
) -> None:
    result = await build_image(tree, store, index_path=tmp_path / "chunks.json")
    unpacked = tmp_path / "unpacked"
    unpack(image_bytes(store, result.image_digest), unpacked)
    console = os.lstat(unpacked / "dev/console")
    assert (os.major(console.st_rdev), os.minor(console.st_rdev)) == (5, 1)
    assert os.lstat(unpacked / "dev/vda").st_gid == 6
    assert os.lstat(unpacked / "usr/bin/suid").st_mode & 0o7777 == 0o4755
    assert os.lstat(unpacked / "tmp").st_mode & 0o7777 == 0o1777
    assert os.readlink(unpacked / "dangling") == "/nonexistent/absolute"
    notes = os.lstat(unpacked / "home/user/notes.txt")
    assert (notes.st_uid, notes.st_gid, notes.st_mode & 0o777) == (1234, 5678, 0o600)
    assert (unpacked / "with space/and ünïcödé name.txt").read_text() == "héllo wörld\n"


async def test_sockets_are_left_out(tree: Path, store: ContentStore, tmp_path: Path) -> None:
    import socket

    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(tree / "control.sock"))
        result = await build_image(tree, store, index_path=tmp_path / "chunks.json")
    names = {
        r.name
        for _, archive in members(image_bytes(store, result.image_digest))
        for r in records(archive)
        if r is not None
    }
    assert "control.sock" not in names and "run-fifo" in names


@pytest.mark.parametrize(("codec", "tool"), [("gzip", "gzip"), ("zstd", "zstd")])
async def test_system_tools_read_the_concatenated_members(
    tree: Path, store: ContentStore, tmp_path: Path, codec: Codec, tool: str
) -> None:
    result = await build_image(
        tree,
        store,
        index_path=tmp_path / "chunks.json",
        compression=codec,
        chunking=SMALL,
    )
    path = store.path(result.image_digest)
    whole = run([tool, "-dc", str(path)])
    parts = members(image_bytes(store, result.image_digest))
    assert len(parts) == result.chunks_total > 1
    assert whole == b"".join(data for _, data in parts)


async def test_gnu_cpio_extracts_every_member(
    tree: Path, store: ContentStore, tmp_path: Path
) -> None:
    """Another reader than ours: GNU cpio, one member at a time (it stops at a trailer)."""
    result = await build_image(tree, store, index_path=tmp_path / "chunks.json", chunking=SMALL)
    out = tmp_path / "gnu"
    out.mkdir()
    for _, archive in members(image_bytes(store, result.image_digest)):
        run(["cpio", "-idm", "--quiet", "--no-absolute-filenames"], stdin=archive, cwd=out)
    source = describe(tree)
    got = describe(out)
    # GNU cpio does not restore directory times it had to touch afterwards; compare the rest.
    strip = {k: v[:4] + v[5:] for k, v in source.items()}
    assert {k: v[:4] + v[5:] for k, v in got.items()} == strip
    assert hardlink_sets(out) == hardlink_sets(tree)


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
async def test_big_file_is_streamed_and_intact(
    store: ContentStore, tmp_path: Path, codec: Codec
) -> None:
    root = tmp_path / "rootfs"
    blob = os.urandom(700 * KiB) + b"tail"
    write(root / "big.bin", blob)
    write(root / "small", b"small")
    result = await build_image(
        root, store, index_path=tmp_path / "chunks.json", compression=codec, chunking=SMALL
    )
    assert result.chunks_total == 3  # the root, big.bin on its own (streamed), the rest
    unpacked = tmp_path / "unpacked"
    unpack(image_bytes(store, result.image_digest), unpacked)
    assert (unpacked / "big.bin").read_bytes() == blob
    assert describe(unpacked) == describe(root)


async def test_file_over_4_gib_is_refused_by_name(store: ContentStore, tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "data").mkdir(parents=True)
    sparse_file(root / "data/huge.img", 4 << 30)  # one byte over the newc limit, no disk used
    with pytest.raises(Exception, match=r"/data/huge\.img is 4294967296 bytes.*4 GiB") as caught:
        await build_image(root, store, index_path=tmp_path / "chunks.json")
    assert "newc" in str(caught.value)
    assert not list(store.iter_digests())


async def test_progress_is_reported_by_phase(
    tree: Path, store: ContentStore, tmp_path: Path
) -> None:
    seen: list[BuildProgress] = []
    result = await build_image(
        tree, store, index_path=tmp_path / "chunks.json", chunking=SMALL, on_progress=seen.append
    )
    phases = [p.phase for p in seen]
    assert phases[0] == "scan" and phases[-1] == "assemble" and "compress" in phases
    last = seen[-1]
    assert last.files_done == last.files_total == result.files
    assert last.chunks_built == result.chunks_total
    assert last.bytes_done == result.size


@pytest.mark.parametrize("name", ["big.bin", "small"])
async def test_file_changed_during_the_build_fails_cleanly(
    store: ContentStore, tmp_path: Path, name: str
) -> None:
    """A file that changes between the scan and its read ends the build with a clear error and
    leaves no image and no half-written blob (big.bin goes the streamed way, small does not)."""
    root = tmp_path / "rootfs"
    write(root / "big.bin", os.urandom(700 * KiB))
    write(root / "small", b"small")

    def change_after_scan(progress: BuildProgress) -> None:
        if progress.phase == "compress" and progress.chunks_built == 0:
            write(root / name, b"shorter now")

    with pytest.raises(Conflict, match=f"/{name} changed while the image was being built"):
        await build_image(
            root,
            store,
            index_path=tmp_path / "chunks.json",
            chunking=SMALL,
            on_progress=change_after_scan,
        )
    assert not (tmp_path / "chunks.json").exists()
    assert not list(store.root.glob("**/.tmp-*"))
