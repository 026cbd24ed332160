"""`wolfpack gc` and `wolfpack fsck` as an administrator runs them beside a real `wolfpack up`:
an image built by the builder from a busybox tarball, a site overlay, a node rendered by
overlayd and served by bootd; orphans old and young added by hand."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import msgspec
import pytest

from libs.common import names
from libs.common.bus.server import free_port
from libs.common.models.image import ImageMeta
from libs.common.models.overlay import BootManifest
from libs.common.store.cas import ContentStore
from libs.common.store.files import iter_blobs, quarantine_dir
from libs.runtime.store_refs import read_references
from tests.builder.helpers import busybox_rootfs, tarball, watching
from tests.cli import run_cli

# Helpers of the builder and overlayd tests (those folders are not packages).
from tests.overlayd.helpers import Boot, following_boot
from tests.stack import UpStack, nats_client, start_up

API = names.API_PREFIX
IMAGE = "bb"
NODE = "n1"
MAC = "aa:bb:cc:00:00:01"
OVERLAY = "motd"
HOUR = 3600.0


@dataclass
class Cluster:
    stack: UpStack
    store: ContentStore
    image: ImageMeta

    def api(self, service: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.stack.url(service) + API,
            headers={"Authorization": f"Bearer {self.stack.token}"},
            timeout=120,
        )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpStack]:
    with start_up(tmp_path_factory.mktemp("up") / "data") as running:
        yield running


@pytest.fixture(scope="module")
def cluster(stack: UpStack, tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    """Image `bb` built, site overlay `motd` (etc/motd = "A"), node n1 booting both."""
    folder = tmp_path_factory.mktemp("busybox")
    archive = tarball(busybox_rootfs(folder / "tree"), folder / "busybox.tar.gz")

    async def build() -> Cluster:
        cluster = Cluster(stack, ContentStore(stack.data / "cas"), image=None)  # type: ignore[arg-type]
        async with watching(stack.nats_url) as events, cluster.api("builder") as builder:
            r = await builder.post("/images", json={"name": IMAGE, "source": str(archive)})
            assert r.status_code == 202, r.text
            verb, _ = await events.wait(IMAGE, ("built", "failed"))
            assert verb == "built", stack.log.read_text()[-3000:]
        async with cluster.api("overlayd") as overlayd:
            r = await overlayd.post("/overlays", json={"name": OVERLAY, "empty": True})
            assert r.status_code == 201, r.text
            await set_motd(cluster, b"A\n")
        async with following_boot(stack.nats_url) as boot, cluster.api("registry") as registry:
            r = await registry.put(
                f"/nodes/{NODE}",
                json={
                    "image": IMAGE,
                    "system_overlay": [OVERLAY],
                    "network_devices": {"default": {"hwaddr": MAC, "ipaddr": "10.0.0.1"}},
                },
            )
            assert r.status_code in (200, 201), r.text
            manifest = await boot.manifest(NODE, lambda m: m.image_digest is not None)
        cluster.image = await kv_image(stack)
        assert manifest.image_digest == cluster.image.image_digest
        return cluster

    return asyncio.run(build())


async def set_motd(cluster: Cluster, content: bytes) -> None:
    async with cluster.api("overlayd") as overlayd:
        r = await overlayd.put(f"/overlays/{OVERLAY}/files/etc/motd", content=content)
        assert r.status_code == 200, r.text


async def kv_image(stack: UpStack) -> ImageMeta:
    async with nats_client(stack.nats_url) as nc:
        entry = await (await nc.jetstream().key_value(names.BUCKET_IMAGES)).get(IMAGE)
        return msgspec.json.decode(entry.value or b"", type=ImageMeta)


@pytest.fixture
async def boot(cluster: Cluster) -> AsyncIterator[Boot]:
    async with following_boot(cluster.stack.nats_url) as followed:
        yield followed


def wolfpack(stack: UpStack, *args: str) -> subprocess.CompletedProcess[str]:
    """`wolfpack ARGS --data DATA` in a fresh process, as an administrator types it."""
    return run_cli("wolfpack", *args, "--data", str(stack.data), within=600)


def age_everything(store: ContentStore, seconds: float = 2 * HOUR) -> None:
    """As if the cluster had run for a while: every blob stored `seconds` ago."""
    then = time.time() - seconds
    for blob in iter_blobs(store):
        os.utime(blob.path, (then, then))


async def orphan(store: ContentStore, content: bytes, seconds: float | None) -> str:
    digest = await store.put_bytes(content)
    if seconds is not None:
        then = time.time() - seconds
        os.utime(store.path(digest), (then, then))
    return digest


def manifest_blobs(manifest: BootManifest) -> list[str]:
    found = [manifest.kernel_digest, manifest.image_digest, *manifest.system_digests]
    return [d for d in [*found, manifest.runtime_digest] if d]


async def assert_bootable(cluster: Cluster, manifest: BootManifest) -> None:
    """bootd answers the node's iPXE script and serves the node every blob its script names
    (as the node asks: `?wwid=`; the runtime archive goes out at /runtime only)."""
    async with httpx.AsyncClient(base_url=cluster.stack.url("bootd"), timeout=30) as bootd:
        script = await bootd.get(f"/ipxe/{MAC}")
        assert script.status_code == 200 and NODE in script.text, script.text
        for digest in manifest_blobs(manifest):
            if digest == manifest.runtime_digest:
                continue
            r = await bootd.head(f"/blobs/sha256/{digest}", params={"wwid": MAC})
            assert r.status_code == 200, f"bootd cannot serve {digest}: {r.status_code}"


def chunk_digests(stack: UpStack) -> set[str]:
    index = json.loads((stack.data / "images" / IMAGE / "chunks.json").read_bytes())
    return {digest for _, digest in index["chunks"]} | {index["image"]}


async def test_gc_removes_old_orphans_and_keeps_everything_in_use(
    cluster: Cluster, boot: Boot
) -> None:
    store, stack = cluster.store, cluster.stack
    manifest = await boot.manifest(NODE)
    in_use = set(manifest_blobs(manifest)) | chunk_digests(stack)
    age_everything(store)
    old = await orphan(store, b"an old orphan", 2 * HOUR)
    young = await orphan(store, b"a blob a render just stored", None)
    temp = store.root / "sha256" / ".tmp-left-by-a-crash"
    temp.write_bytes(b"half a blob")
    os.utime(temp, (time.time() - 2 * HOUR,) * 2)
    present = {blob.digest for blob in iter_blobs(store)}

    dry = wolfpack(stack, "gc", "--dry-run", "-o", "json")
    assert dry.returncode == 0, dry.stderr
    would = json.loads(dry.stdout)
    assert would["dry_run"] and old in would["removed"] and young not in would["removed"]
    assert not in_use & set(would["removed"])
    assert {blob.digest for blob in iter_blobs(store)} == present and temp.exists()

    done = wolfpack(stack, "gc", "-o", "json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    print(f"\ngc: {report['blobs_scanned']} blobs, {report['seconds']} s with the fresh render")
    assert set(report["removed"]) == set(would["removed"])
    assert report["bytes_freed"] == would["bytes_freed"] > 0
    assert report["temps_removed"] == 1 and not temp.exists()
    assert report["warnings"] == [] and report["missing"] == []
    left = {blob.digest for blob in iter_blobs(store)}
    assert old not in left and young in left
    assert in_use <= left
    assert left == present - set(report["removed"])
    await assert_bootable(cluster, boot.manifests[NODE])

    again = wolfpack(stack, "gc")  # text summary; nothing old is unreferenced any more
    assert again.returncode == 0, again.stderr
    assert "0 removed" in again.stdout


async def test_an_archive_gc_removed_is_stored_again_when_a_node_needs_it_back(
    cluster: Cluster, boot: Boot
) -> None:
    # overlayd remembers the archives it stored; gc makes it forget (a fresh render), so
    # going back to an earlier motd stores that archive again instead of naming a lost blob.
    store = cluster.store
    before = await boot.manifest(NODE)
    await set_motd(cluster, b"B\n")
    changed = await boot.manifest(NODE, lambda m: m.system_digests != before.system_digests)
    dropped = set(before.system_digests) - set(changed.system_digests)
    assert dropped
    age_everything(store)

    done = wolfpack(cluster.stack, "gc", "-o", "json")
    assert done.returncode == 0, done.stderr
    assert dropped <= set(json.loads(done.stdout)["removed"])
    assert not any(store.exists(digest) for digest in dropped)

    await set_motd(cluster, b"A\n")
    back = await boot.manifest(NODE, lambda m: m.system_digests == before.system_digests)
    assert all(store.exists(digest) for digest in manifest_blobs(back))
    await assert_bootable(cluster, back)


async def test_gc_without_nats_removes_nothing(cluster: Cluster) -> None:
    store = cluster.store
    old = await orphan(store, b"an orphan nobody may remove blind", 2 * HOUR)
    nowhere = f"nats://127.0.0.1:{free_port()}"

    done = wolfpack(cluster.stack, "gc", "--nats", nowhere)

    assert done.returncode == 1
    assert f"cannot reach NATS at {nowhere}" in done.stderr
    assert "nothing was removed" in done.stderr
    assert store.exists(old)


async def test_fsck_names_a_corrupt_blob_and_quarantines_it_until_rebuilt(
    cluster: Cluster, boot: Boot
) -> None:
    stack, store = cluster.stack, cluster.store
    clean = wolfpack(stack, "fsck", "-o", "json")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    report = json.loads(clean.stdout)
    assert report["corrupt"] == [] and report["missing"] == [] and report["referrers_known"]
    assert report["blobs_checked"] == len(list(iter_blobs(store)))

    kernel = cluster.image.kernel_digest
    original = store.path(kernel).read_bytes()
    with store.path(kernel).open("r+b") as blob:
        blob.seek(len(original) // 2)
        blob.write(bytes([original[len(original) // 2] ^ 0x01]))

    found = wolfpack(stack, "fsck", "-o", "json")
    assert found.returncode == 1
    [corrupt] = json.loads(found.stdout)["corrupt"]
    assert (corrupt["digest"], corrupt["problem"]) == (kernel, "mismatch")
    assert f"node {NODE} (kernel)" in corrupt["referrers"]
    assert f"image {IMAGE} (kernel)" in corrupt["referrers"]
    assert corrupt["remedies"] == [f"wolfctl image build {IMAGE}"]
    assert store.exists(kernel)
    text = wolfpack(stack, "fsck")
    assert text.returncode == 1 and f"to make it again: wolfctl image build {IMAGE}" in text.stdout

    moved = wolfpack(stack, "fsck", "--quarantine", "-o", "json")
    assert moved.returncode == 1
    assert json.loads(moved.stdout)["quarantined"] == 1
    assert not store.exists(kernel)
    assert (quarantine_dir(store) / kernel).is_file()

    missing = wolfpack(stack, "fsck", "-o", "json")
    assert missing.returncode == 1
    report = json.loads(missing.stdout)
    assert report["corrupt"] == [] and [m["digest"] for m in report["missing"]] == [kernel]

    # The remedy it names works: the rebuild stores the kernel again.
    async with watching(stack.nats_url) as events, cluster.api("builder") as builder:
        r = await builder.post(f"/images/{IMAGE}:build")
        assert r.status_code == 202, r.text
        verb, _ = await events.wait(IMAGE, ("built", "failed", "unchanged"), job=r.json()["id"])
        assert verb != "failed"
    assert store.path(kernel).read_bytes() == original
    healthy = wolfpack(stack, "fsck")
    assert healthy.returncode == 0, healthy.stdout
    await assert_bootable(cluster, await boot.manifest(NODE))


async def test_references_read_from_the_running_stack(cluster: Cluster) -> None:
    found = await read_references(cluster.stack.nats_url, cluster.stack.data)
    image = cluster.image
    assert {str(r) for r in found.of(image.image_digest)} >= {
        f"node {NODE} (image)",
        f"image {IMAGE} (image)",
        f"chunk index of image {IMAGE} (chunk)",
    }
    motd = hashlib.sha256(b"A\n").hexdigest()
    assert [str(r) for r in found.of(motd)] == [f"overlay {OVERLAY} (file etc/motd)"]
