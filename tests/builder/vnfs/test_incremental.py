"""Rebuilds reuse every chunk whose files did not change, and only those."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from libs.common.store.cas import ContentStore
from services.builder.vnfs import BuildResult, ChunkSettings, build_image
from tests.builder.vnfs.helpers import describe, make_tree, unpack, write

KiB = 1 << 10
SMALL = ChunkSettings(min_size=16 * KiB, avg_size=64 * KiB, max_size=256 * KiB)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    make_tree(root, bulk_files=200)
    return root


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    return ContentStore(tmp_path / "cas")


async def build(tree: Path, store: ContentStore, index: Path, **options: object) -> BuildResult:
    return await build_image(tree, store, index_path=index, chunking=SMALL, **options)  # type: ignore[arg-type]


def overwrite_start(path: Path, data: bytes) -> None:
    with open(path, "r+b") as linked:
        linked.write(data)


def unpacked(store: ContentStore, digest: str, into: Path) -> Path:
    with store.open(digest) as blob:
        unpack(blob.read(), into)
    return into


async def test_unchanged_rebuild_reuses_everything(
    tree: Path, store: ContentStore, tmp_path: Path
) -> None:
    index = tmp_path / "chunks.json"
    first = await build(tree, store, index)
    assert first.chunks_total > 20 and first.chunks_reused == 0
    again = await build(tree, store, index)
    assert again.chunks_reused == again.chunks_total == first.chunks_total
    assert again.image_digest == first.image_digest


async def test_one_changed_file_rebuilds_one_chunk(
    tree: Path, store: ContentStore, tmp_path: Path
) -> None:
    index = tmp_path / "chunks.json"
    first = await build(tree, store, index)
    target = tree / "usr/share/bulk/10/file-105"
    old = target.read_bytes()
    new = bytes(b ^ 0xFF for b in old)  # same size, other content
    target.write_bytes(new)
    second = await build(tree, store, index)
    assert second.chunks_total - second.chunks_reused == 1
    assert second.image_digest != first.image_digest
    out = unpacked(store, second.image_digest, tmp_path / "out")
    assert (out / "usr/share/bulk/10/file-105").read_bytes() == new
    assert describe(out) == describe(tree)


async def test_changed_hardlinked_file_is_seen_under_every_name(
    tree: Path, store: ContentStore, tmp_path: Path
) -> None:
    index = tmp_path / "chunks.json"
    await build(tree, store, index)
    overwrite_start(tree / "b/second", b"THREE")
    second = await build(tree, store, index)
    assert second.chunks_total - second.chunks_reused == 1
    out = unpacked(store, second.image_digest, tmp_path / "out")
    for name in ("a/three-names", "b/second", "z/third"):
        assert (out / name).read_bytes() == b"THREE names\n"


async def test_added_file_in_the_middle_rebuilds_few_chunks(
    tree: Path, store: ContentStore, tmp_path: Path
) -> None:
    index = tmp_path / "chunks.json"
    first = await build(tree, store, index)
    write(tree / "usr/share/bulk/08/file-0855-new", os.urandom(30 * KiB))
    second = await build(tree, store, index)
    rebuilt = second.chunks_total - second.chunks_reused
    assert 1 <= rebuilt <= 2, f"{rebuilt} of {second.chunks_total} chunks rebuilt"
    assert second.chunks_total >= first.chunks_total
    out = unpacked(store, second.image_digest, tmp_path / "out")
    assert describe(out) == describe(tree)


async def test_removed_file_is_gone_and_few_chunks_rebuilt(
    tree: Path, store: ContentStore, tmp_path: Path
) -> None:
    index = tmp_path / "chunks.json"
    await build(tree, store, index)
    (tree / "usr/share/bulk/05/file-050").unlink()
    second = await build(tree, store, index)
    assert second.chunks_total - second.chunks_reused <= 2
    out = unpacked(store, second.image_digest, tmp_path / "out")
    assert not (out / "usr/share/bulk/05/file-050").exists()
    assert describe(out) == describe(tree)


async def test_same_tree_gives_the_same_image_in_another_store(tree: Path, tmp_path: Path) -> None:
    one = await build(tree, ContentStore(tmp_path / "one"), tmp_path / "one.json")
    two = await build(tree, ContentStore(tmp_path / "two"), tmp_path / "two.json")
    assert one.image_digest == two.image_digest


async def test_lost_chunk_blob_or_index_is_rebuilt(
    tree: Path, store: ContentStore, tmp_path: Path
) -> None:
    index = tmp_path / "chunks.json"
    first = await build(tree, store, index)
    victim = next(d for d in store.iter_digests() if d != first.image_digest)
    store.path(victim).unlink()
    second = await build(tree, store, index)
    assert second.chunks_total - second.chunks_reused == 1
    assert second.image_digest == first.image_digest

    index.write_text("{not json")
    third = await build(tree, store, index)
    assert third.chunks_reused == 0
    assert third.image_digest == first.image_digest


async def test_other_compression_shares_no_chunk(
    tree: Path, store: ContentStore, tmp_path: Path
) -> None:
    index = tmp_path / "chunks.json"
    await build(tree, store, index)
    zstd = await build(tree, store, index, compression="zstd")
    assert zstd.chunks_reused == 0
    faster = await build(tree, store, index, compression="zstd", level=1)
    assert faster.chunks_reused == 0
