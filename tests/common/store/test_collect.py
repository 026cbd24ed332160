"""Garbage collection on a real store: what goes, what stays, and blobs stored again while it
runs. The references come in as a set here (reading them from NATS: tests/runtime)."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from libs.common.errors import Invalid
from libs.common.models.image import ImageMeta
from libs.common.models.overlay import BootManifest, OverlayFile, OverlayMeta
from libs.common.store.cas import TEMP_PREFIX, ContentStore
from libs.common.store.collect import GcReport, plan_gc, sweep
from libs.common.store.files import iter_blobs, iter_temps
from libs.common.store.references import References

HOUR = 3600.0


@pytest.fixture
def store(data_dir: Path) -> ContentStore:
    return ContentStore(data_dir / "cas")


def age(path: Path, seconds: float) -> None:
    """Make `path` look written `seconds` ago (atime and mtime)."""
    then = time.time() - seconds
    os.utime(path, (then, then))


async def put_old(store: ContentStore, data: bytes, seconds: float = 2 * HOUR) -> str:
    digest = await store.put_bytes(data)
    age(store.path(digest), seconds)
    return digest


def collect(
    store: ContentStore, referenced: set[str], *, dry_run: bool = False, grace: float = HOUR
) -> GcReport:
    plan = plan_gc(
        iter_blobs(store), iter_temps(store), referenced, grace=grace, started=time.time()
    )
    return sweep(store, plan, dry_run=dry_run)


def stale_temp(store: ContentStore, name: str, seconds: float, size: int = 10) -> Path:
    folder = store.root / "sha256" / "ab"
    folder.mkdir(parents=True, exist_ok=True)
    temp = folder / f"{TEMP_PREFIX}{name}"
    temp.write_bytes(b"x" * size)
    age(temp, seconds)
    return temp


async def test_unreferenced_old_blobs_go_the_rest_stays(store: ContentStore) -> None:
    kept = await put_old(store, b"a kernel")
    orphan = await put_old(store, b"an old overlay archive")
    young = await store.put_bytes(b"a blob a render just stored")
    old_temp = stale_temp(store, "crashed", 2 * HOUR, size=123)
    young_temp = stale_temp(store, "writing", 10)

    report = collect(store, {kept})

    assert not store.exists(orphan)
    assert store.exists(kept) and store.exists(young)
    assert store.path(kept).read_bytes() == b"a kernel"
    assert not old_temp.exists() and young_temp.exists()
    assert (report.blobs_scanned, report.blobs_referenced, report.blobs_young) == (3, 1, 1)
    assert (report.blobs_removed, report.bytes_freed) == (1, len(b"an old overlay archive"))
    assert report.removed == [orphan]
    assert (report.temps_removed, report.temp_bytes_freed, report.temps_young) == (1, 123, 1)
    assert report.grace_seconds == HOUR and not report.dry_run


async def test_dry_run_removes_nothing_and_says_what_would_go(store: ContentStore) -> None:
    orphan = await put_old(store, b"orphan")
    temp = stale_temp(store, "crashed", 2 * HOUR)
    before = sorted(p for p in store.root.rglob("*") if p.is_file())

    report = collect(store, set(), dry_run=True)

    assert sorted(p for p in store.root.rglob("*") if p.is_file()) == before
    assert report.dry_run and report.removed == [orphan] and report.blobs_removed == 1
    assert report.bytes_freed == len(b"orphan") and report.temps_removed == 1
    assert temp.exists()


async def test_the_grace_period_decides_what_is_young(store: ContentStore) -> None:
    digest = await put_old(store, b"ten minutes old", seconds=600)
    assert collect(store, set(), grace=HOUR).blobs_young == 1
    assert store.exists(digest)
    assert collect(store, set(), grace=60).removed == [digest]
    assert not store.exists(digest)


async def test_a_blob_stored_again_is_young_again(store: ContentStore) -> None:
    # A build stores a kernel an image deleted long ago left behind, then names it in KV
    # `images`: the second put must keep gc away from it for the grace period.
    digest = await put_old(store, b"the same kernel")
    mtime = store.path(digest).stat().st_mtime_ns
    await store.put_bytes(b"the same kernel")
    assert store.path(digest).stat().st_mtime_ns == mtime  # the blob itself is untouched
    batch = await put_old(store, b"an archive put_many stores again")
    await store.put_many([b"an archive put_many stores again"])

    report = collect(store, set())

    assert report.removed == [] and report.blobs_young == 2
    assert store.exists(digest) and store.exists(batch)


async def test_a_blob_stored_again_after_planning_stays(store: ContentStore) -> None:
    digest = await put_old(store, b"chosen, then needed again")
    plan = plan_gc(iter_blobs(store), iter_temps(store), set(), grace=HOUR, started=time.time())
    assert [blob.digest for blob in plan.orphans] == [digest]

    await store.put_bytes(b"chosen, then needed again")  # a render between plan and sweep
    report = sweep(store, plan, dry_run=False)

    assert report.blobs_kept_late == 1 and report.blobs_removed == 0
    assert store.path(digest).read_bytes() == b"chosen, then needed again"
    assert list(iter_temps(store)) == []  # the blob went back; nothing left over


async def test_referenced_blobs_missing_from_the_store_are_reported(
    store: ContentStore,
) -> None:
    present = await put_old(store, b"here")
    absent = hashlib.sha256(b"never stored").hexdigest()
    report = collect(store, {present, absent})
    assert report.missing == [absent] and store.exists(present)


def test_a_negative_grace_is_refused(store: ContentStore) -> None:
    with pytest.raises(Invalid, match="grace period must not be negative"):
        plan_gc([], [], set(), grace=-1, started=time.time())


async def test_an_empty_or_absent_store_collects_nothing(store: ContentStore) -> None:
    report = collect(store, set())
    assert (report.blobs_scanned, report.blobs_removed, report.temps_removed) == (0, 0, 0)


def digest_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_references_cover_manifests_images_overlays_and_chunk_indexes() -> None:
    kernel, image, shared, own, runtime = (digest_of(t) for t in "kisor")
    motd, chunk = digest_of("motd"), digest_of("chunk")
    found = References()
    found.add_manifest(
        BootManifest(
            node="n001",
            image="rocky",
            kernel_digest=kernel,
            image_digest=image,
            system_digests=[shared, own],
            runtime_digest=f"sha256:{runtime}",  # prefixed digests count as the same blob
        )
    )
    found.add_image(
        ImageMeta(
            name="rocky",
            source="docker://rockylinux:9",
            image_digest=image,
            kernel_digest=kernel,
            kernel_version="5.14.0",
            size=1,
            built_at=0.0,
        )
    )
    found.add_overlay(
        OverlayMeta(
            name="site",
            files={
                "etc": OverlayFile(kind="dir"),
                "etc/motd": OverlayFile(kind="file", digest=motd, size=4),
            },
        )
    )
    found.add_chunk_index("rocky", [chunk, image, ""])

    assert set(found) == {kernel, image, shared, own, runtime, motd, chunk}
    assert [str(r) for r in found.of(kernel)] == ["node n001 (kernel)", "image rocky (kernel)"]
    assert {r.remedy() for r in found.of(kernel)} == {"wolfctl image build rocky"}
    assert [r.remedy() for r in found.of(own)] == ["wolfctl overlay build (renders n001 again)"]
    assert [str(r) for r in found.of(motd)] == ["overlay site (file etc/motd)"]
    assert "overlay import/edit site etc/motd" in found.of(motd)[0].remedy()
    assert [str(r) for r in found.of(chunk)] == ["chunk index of image rocky (chunk)"]
    assert found.of(digest_of("other")) == []
