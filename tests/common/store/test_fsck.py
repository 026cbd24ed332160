"""fsck on a real store: every blob hashed again, corrupt ones named with what references
them, quarantined on request (moved, never deleted)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from libs.common.models.image import ImageMeta
from libs.common.models.overlay import BootManifest
from libs.common.store.cas import ContentStore
from libs.common.store.files import iter_blobs, quarantine, quarantine_dir
from libs.common.store.fsck import (
    check_store,
    find_missing,
    name_referrers,
    quarantine_all,
    verify_blob,
)
from libs.common.store.references import References


@pytest.fixture
def store(data_dir: Path) -> ContentStore:
    return ContentStore(data_dir / "cas")


def flip_byte(path: Path, offset: int = 0) -> None:
    with path.open("r+b") as blob:
        blob.seek(offset)
        byte = blob.read(1)
        blob.seek(offset)
        blob.write(bytes([byte[0] ^ 0xFF]))


async def test_a_clean_store_reports_nothing(store: ContentStore) -> None:
    big = os.urandom(3 << 20)  # several reads of 1 MiB
    digests = [await store.put_bytes(data) for data in (b"a", b"", big)]
    progress: list[tuple[str, int, int | None]] = []

    report = await check_store(store, workers=2, on_progress=lambda *a: progress.append(a))

    assert report.corrupt == [] and report.blobs_checked == 3
    assert report.bytes_checked == 1 + len(big)
    assert progress[-1] == ("hashing", 1 + len(big), 1 + len(big))
    assert all(store.exists(d) for d in digests)


async def test_a_flipped_byte_is_found_and_named_with_its_referrers(
    store: ContentStore,
) -> None:
    kernel = await store.put_bytes(os.urandom(2 << 20))
    fine = await store.put_bytes(b"an untouched image")
    flip_byte(store.path(kernel), offset=(1 << 20) + 7)
    references = References()
    references.add_manifest(BootManifest(node="n001", image="bb", kernel_digest=kernel))
    references.add_image(
        ImageMeta(
            name="bb",
            source="busybox.tar.gz",
            image_digest=fine,
            kernel_digest=kernel,
            kernel_version="1.0.0",
            size=1,
            built_at=0.0,
        )
    )

    report = await check_store(store)
    name_referrers(report, references)

    [corrupt] = report.corrupt
    actual = hashlib.sha256(store.path(kernel).read_bytes()).hexdigest()
    assert (corrupt.digest, corrupt.problem) == (kernel, "mismatch")
    assert corrupt.detail == f"{2 << 20} bytes that hash to {actual}"
    assert corrupt.referrers == ["node n001 (kernel)", "image bb (kernel)"]
    assert corrupt.remedies == ["wolfctl image build bb"]
    assert report.referrers_known and corrupt.quarantined is None
    assert store.exists(kernel)  # only reported: nothing moves without --quarantine


async def test_quarantine_moves_corrupt_blobs_and_keeps_them(store: ContentStore) -> None:
    bad = await store.put_bytes(b"soon corrupt")
    good = await store.put_bytes(b"good")
    flip_byte(store.path(bad))
    corrupted = store.path(bad).read_bytes()

    report = await check_store(store)
    quarantine_all(store, report)

    target = quarantine_dir(store) / bad
    assert report.quarantined == 1 and report.corrupt[0].quarantined == str(target)
    assert not store.exists(bad) and target.read_bytes() == corrupted
    assert [b.digest for b in iter_blobs(store)] == [good]
    assert (await check_store(store)).corrupt == []  # the quarantine is outside the blobs
    # The blob comes back corrupt again: the second copy does not replace the first.
    store.path(bad).write_bytes(b"corrupt again")
    second = quarantine(store, store.path(bad))
    assert second.name == f"{bad}.1" and target.read_bytes() == corrupted


async def test_emptied_and_misplaced_files_are_corrupt(store: ContentStore) -> None:
    emptied = await store.put_bytes(b"emptied by a crash")
    store.path(emptied).write_bytes(b"")
    moved = await store.put_bytes(b"in the wrong folder")
    wrong = store.root / "sha256" / "00" / moved
    wrong.parent.mkdir(exist_ok=True)
    os.rename(store.path(moved), wrong)
    junk = store.root / "sha256" / "notes.txt"
    junk.write_text("left by hand")
    link = store.root / "sha256" / emptied[:2] / ("f" * 64)
    link.symlink_to("/etc/passwd")

    report = await check_store(store)

    found = {Path(c.path): (c.problem, c.detail) for c in report.corrupt}
    assert found == {
        store.path(emptied): ("empty", "the file is empty"),
        wrong: ("misplaced", f"a blob in the wrong folder (belongs in {moved[:2]}/)"),
        junk: ("misplaced", "not a blob: its name is not a sha256 digest"),
        link: ("misplaced", "a symbolic link, not a blob"),
    }
    quarantine_all(store, report)
    assert report.quarantined == 4
    assert sorted(p.name for p in quarantine_dir(store).iterdir()) == sorted(
        [emptied, moved, "notes.txt", "f" * 64]
    )
    # The link itself moved, not what it points at.
    assert os.readlink(quarantine_dir(store) / ("f" * 64)) == "/etc/passwd"
    assert (await check_store(store)).corrupt == []


def test_an_unreadable_blob_is_reported(tmp_path: Path) -> None:
    # Root reads any file whatever its mode; a folder where a file should be fails the read.
    folder = tmp_path / ("a" * 64)
    folder.mkdir()
    found = verify_blob(folder, "a" * 64)
    assert found is not None and found.problem == "unreadable"
    assert "Is a directory" in found.detail
    assert verify_blob(tmp_path / "gone", "b" * 64) is None  # removed meanwhile: not corrupt


async def test_referenced_blobs_the_store_lacks_are_missing(store: ContentStore) -> None:
    here = await store.put_bytes(b"here")
    gone = hashlib.sha256(b"quarantined").hexdigest()
    references = References()
    references.add_manifest(BootManifest(node="n7", image="bb", kernel_digest=here))
    references.add_manifest(BootManifest(node="n7", image="bb", image_digest=gone))
    report = await check_store(store)
    find_missing(store, report, references)
    [missing] = report.missing
    assert (missing.digest, missing.referrers) == (gone, ["node n7 (image)"])
    assert missing.remedies == ["wolfctl image build bb"]
