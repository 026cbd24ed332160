"""Applying tar layers: every kind of entry, whiteouts and opaque directories, limits."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from libs.common.errors import Invalid
from services.builder.sources.layers import LayerBlob, apply_layers
from services.builder.sources.progress import ImportProgress, ProgressReporter
from services.builder.sources.stream import Budget
from tests.builder.sources.helpers import (
    MTIME,
    Entry,
    base_layer,
    base_tree,
    device,
    directory,
    file,
    layered_tree,
    snapshot,
    symlink,
    tar_bytes,
    upper_layers,
)


async def apply(
    tmp_path: Path,
    layers: list[list[Entry]],
    *,
    compression: str | None = None,
    whiteouts: bool = True,
    allow_devices: bool = True,
    max_bytes: int = 1 << 30,
    progress: list[ImportProgress] | None = None,
) -> Path:
    root = tmp_path / "rootfs"
    root.mkdir(exist_ok=True)
    blobs = []
    for number, entries in enumerate(layers):
        blob = tmp_path / f"layer{number}.tar"
        blob.write_bytes(tar_bytes(entries, compression))
        blobs.append(LayerBlob(path=blob, label=f"layer {number}", size=blob.stat().st_size))
    reporter = ProgressReporter(None if progress is None else progress.append, interval=0)
    await asyncio.to_thread(
        apply_layers,
        root,
        blobs,
        whiteouts=whiteouts,
        allow_devices=allow_devices,
        budget=Budget(max_bytes),
        reporter=reporter,
    )
    return root


@pytest.mark.parametrize("compression", [None, "gzip", "zstd"])
async def test_one_layer_gives_every_kind_of_entry(tmp_path: Path, compression: str | None) -> None:
    root = await apply(tmp_path, [base_layer()], compression=compression)
    assert snapshot(root) == base_tree()
    assert os.lstat(root / "etc/passwd").st_mtime == MTIME
    assert os.lstat(root / "usr/bin").st_mtime == MTIME  # set after its files were written


async def test_layers_with_whiteouts_and_opaque_dirs(tmp_path: Path) -> None:
    progress: list[ImportProgress] = []
    root = await apply(tmp_path, [base_layer(), *upper_layers()], progress=progress)
    assert snapshot(root) == layered_tree()
    await asyncio.sleep(0)  # reports made in the worker thread reach the loop
    assert progress[-1].phase == "extract"
    assert progress[-1].bytes_done == progress[-1].bytes_total
    assert progress[-1].files_done == sum(len(layer) for layer in [base_layer(), *upper_layers()])


async def test_plain_tarball_keeps_whiteout_files(tmp_path: Path) -> None:
    entries = [directory("etc"), file("etc/.wh.passwd", b""), file("etc/.wh..wh..opq", b"")]
    root = await apply(tmp_path, [entries], whiteouts=False)
    assert sorted(os.listdir(root / "etc")) == [".wh..wh..opq", ".wh.passwd"]


async def test_opaque_keeps_entries_of_its_own_layer_written_before_it(tmp_path: Path) -> None:
    lower = [directory("d"), file("d/old", b"old"), directory("d/sub"), file("d/sub/x", b"x")]
    upper = [directory("d"), directory("d/sub"), file("d/sub/y", b"y"), file("d/.wh..wh..opq")]
    root = await apply(tmp_path, [lower, upper])
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == ["d", "d/sub", "d/sub/y"]


async def test_whiteout_does_not_hide_its_own_layer(tmp_path: Path) -> None:
    root = await apply(tmp_path, [[file("a", b"1")], [file("a", b"2"), file(".wh.a")]])
    assert (root / "a").read_bytes() == b"2"


async def test_write_through_in_image_symlink_stays_inside(tmp_path: Path) -> None:
    """`lib -> /usr/lib` is read as the image sees it: an entry below lands in usr/lib."""
    lower = [directory("usr"), directory("usr/lib")]
    root = await apply(
        tmp_path, [[*lower, symlink("lib", "/usr/lib")], [file("lib/libc.so", b"c")]]
    )
    assert (root / "usr/lib/libc.so").read_bytes() == b"c"
    assert os.readlink(root / "lib") == "/usr/lib"


async def test_size_limit_refuses_a_bomb(tmp_path: Path) -> None:
    with pytest.raises(Invalid, match="import size limit"):
        await apply(
            tmp_path, [[file("big", b"\0" * 200_000)]], compression="gzip", max_bytes=100_000
        )


async def test_devices_refused_when_not_allowed(tmp_path: Path) -> None:
    with pytest.raises(Invalid, match="'dev/mem' is a device node"):
        await apply(
            tmp_path, [[directory("dev"), device("dev/mem", "c", 1, 1)]], allow_devices=False
        )


async def test_truncated_tar_refused(tmp_path: Path) -> None:
    data = tar_bytes([file("a", b"a" * 5000), file("b", b"b")])
    blob = tmp_path / "t.tar"
    blob.write_bytes(data[:1536])  # cut inside the first file's data
    root = tmp_path / "rootfs"
    root.mkdir()
    reporter = ProgressReporter(None)
    layer = LayerBlob(path=blob, label="t.tar", size=blob.stat().st_size)
    with pytest.raises(Invalid, match=r"t\.tar: corrupt or truncated"):
        await asyncio.to_thread(
            apply_layers, root, [layer], whiteouts=False, allow_devices=True,
            budget=Budget(), reporter=reporter,
        )  # fmt: skip
    blob.write_bytes(data[: 512 * 11])  # cut right before the second header
    with pytest.raises(Invalid, match=r"t\.tar: truncated tar"):
        await asyncio.to_thread(
            apply_layers, root, [layer], whiteouts=False, allow_devices=True,
            budget=Budget(), reporter=reporter,
        )  # fmt: skip


async def test_the_root_time_comes_from_the_source_not_the_clock(tmp_path: Path) -> None:
    # The same source must give the same image: the root's mtime is the archive's own "./"
    # entry's, or else its newest entry's, never the time of extraction.
    newer = file("etc/newer", b"x")
    newer[0].mtime = MTIME + 500
    (tmp_path / "plain").mkdir()
    (tmp_path / "own").mkdir()
    root = await apply(tmp_path / "plain", [[directory("etc"), newer]])
    assert root.stat().st_mtime == MTIME + 500
    own = directory(".")
    own[0].mtime = MTIME - 7
    root = await apply(tmp_path / "own", [[own, directory("etc"), newer]])
    assert root.stat().st_mtime == MTIME - 7
