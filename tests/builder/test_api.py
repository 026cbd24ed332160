"""The builder API on a real `wolfpack run builder`: import jobs and their events, one job
per image at a time, show/list/rebuild/delete, and requests refused with a clear 4xx."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
import zstandard

from tests.builder.helpers import (
    Builder,
    Watcher,
    blob,
    busybox_rootfs,
    import_image,
    leftovers,
    read_kv,
    rebuild,
    start_import,
    tarball,
)

PHASES = ["extract", "swap", "kernel", "scan", "compress", "assemble"]


def big_tarball(folder: Path, megabytes: int) -> Path:
    """A busybox tree with `megabytes` of incompressible data: slow enough to be seen busy."""
    tree = busybox_rootfs(folder / "big-tree")
    (tree / "srv").mkdir()
    for number in range(megabytes):
        (tree / "srv" / f"blob-{number}").write_bytes(os.urandom(1 << 20))
    return tarball(tree, folder / "big.tar.gz")


async def test_import_runs_in_the_background_and_ends_with_built_after_kv(
    builder: Builder, api: httpx.AsyncClient, events: Watcher, busybox_tarball: Path
) -> None:
    r = await api.post("/images", json={"name": "first", "source": str(busybox_tarball)})
    assert r.status_code == 202
    job = r.json()
    assert job["state"] == "queued" and job["kind"] == "import"
    assert r.headers["location"] == "/api/v1/images/first/job"

    built = await events.end_of("first", job["id"])
    assert built.__class__.__name__ == "ImageBuilt"
    # State first, then the event: KV already holds what `built` announces.
    meta = await read_kv(builder.nats_url, "first")
    assert meta is not None and meta.revision == built.revision
    assert meta.image_digest == built.image_digest and meta.kernel_version == "1.0.0"
    assert meta.size == blob(builder.data, meta.image_digest).stat().st_size
    assert built.changed  # a new image: everything changed

    # Progress: at least one event per phase, in phase order, all before `built`.
    # The request recorded on the stream first (it survives a crash), then the job's events.
    verbs = [verb for name, verb, p in events.events if name == "first"]
    assert verbs[0] == "requested" and verbs[-1] == "built"
    assert set(verbs[1:-1]) == {"progress"}
    seen = [p.phase for p in events.of("first", "progress", job=job["id"])]
    assert sorted(set(seen), key=seen.index) == PHASES

    job_now = (await api.get("/images/first/job")).json()
    assert job_now["id"] == job["id"] and job_now["state"] == "built"
    shown = (await api.get("/images/first")).json()
    assert shown["rootfs"] == str(builder.data / "images" / "first" / "rootfs")
    assert shown["job"]["state"] == "built" and shown["image_digest"] == meta.image_digest
    listed = (await api.get("/images")).json()
    assert "first" in [image["name"] for image in listed]
    assert leftovers(builder.data) == []


async def test_one_job_per_image_a_second_request_gets_409(
    builder: Builder,
    api: httpx.AsyncClient,
    events: Watcher,
    busybox_tarball: Path,
    tmp_path: Path,
) -> None:
    await import_image(api, events, name="busy", source=str(busybox_tarball))
    slow = big_tarball(tmp_path, 48)
    job = await start_import(api, name="busy", source=str(slow))
    for answer in (
        await api.post("/images", json={"name": "busy", "source": str(busybox_tarball)}),
        await api.post("/images/busy:build"),
        await api.delete("/images/busy"),
    ):
        assert answer.status_code == 409, answer.text
        assert job.id in answer.json()["error"]
    # Another image is not held up.
    other = await import_image(api, events, name="not-busy", source=str(busybox_tarball))
    assert other.__class__.__name__ == "ImageBuilt"
    end = await events.end_of("busy", job.id)
    assert end.__class__.__name__ == "ImageBuilt"


async def test_rebuild_keeps_what_the_image_came_from(
    builder: Builder, api: httpx.AsyncClient, events: Watcher, busybox_tarball: Path
) -> None:
    await import_image(api, events, name="again", source=str(busybox_tarball), compression="zstd")
    before = await read_kv(builder.nats_url, "again")
    assert before is not None
    image = blob(builder.data, before.image_digest).read_bytes()
    assert image.startswith(b"\x28\xb5\x2f\xfd")  # zstd, as asked
    zstandard.ZstdDecompressor().decompressobj().decompress(image)

    built = await rebuild(api, events, "again")
    after = await read_kv(builder.nats_url, "again")
    assert after is not None and after.revision == built.revision > before.revision
    # Same tree, same bytes: the image is the same blob; compression and source are kept.
    assert after.image_digest == before.image_digest and after.compression == "zstd"
    assert after.source == before.source and built.kind == "build"
    assert built.changed == []


async def test_kernelversion_picks_and_is_kept(
    builder: Builder, api: httpx.AsyncClient, events: Watcher, tmp_path: Path
) -> None:
    tree = busybox_rootfs(tmp_path / "tree", kernel=b"one")
    (tree / "boot/vmlinuz-2.0.0").write_bytes(b"two")
    archive = tarball(tree, tmp_path / "kernels.tar.gz")

    await import_image(api, events, name="kernels", source=str(archive))
    meta = await read_kv(builder.nats_url, "kernels")
    assert meta is not None and meta.kernel_version == "2.0.0"  # the highest by default

    await import_image(api, events, name="kernels", source=str(archive), kernelversion="1.0")
    await rebuild(api, events, "kernels")
    meta = await read_kv(builder.nats_url, "kernels")
    assert meta is not None and meta.kernelversion == "1.0" and meta.kernel_version == "1.0.0"
    assert blob(builder.data, meta.kernel_digest).read_bytes() == b"one"

    failed = await import_image(api, events, name="kernels", source=str(archive), kernelversion="9")
    assert "kernel version 9 not found; available: 2.0.0, 1.0.0" in failed.reason
    assert failed.phase == "kernel"


async def test_an_image_without_a_kernel_fails_with_where_it_looked(
    api: httpx.AsyncClient, events: Watcher, tmp_path: Path
) -> None:
    archive = tarball(busybox_rootfs(tmp_path / "tree", kernel=None), tmp_path / "nok.tar.gz")
    failed = await import_image(api, events, name="no-kernel", source=str(archive))
    assert "no kernel found in image" in failed.reason and "/boot/vmlinuz-*" in failed.reason
    assert (await api.get("/images/no-kernel")).status_code == 404


async def test_a_chroot_directory_is_copied(
    builder: Builder, api: httpx.AsyncClient, events: Watcher, tmp_path: Path
) -> None:
    tree = busybox_rootfs(tmp_path / "chroot")
    await import_image(api, events, name="from-chroot", source=str(tree))
    rootfs = builder.data / "images" / "from-chroot" / "rootfs"
    assert (rootfs / "bin/busybox").read_bytes() == (tree / "bin/busybox").read_bytes()
    (tree / "etc/hostname").write_text("changed in the source\n")
    assert (rootfs / "etc/hostname").read_text() == "busybox\n"  # a copy, not the source

    # The builder's own data folder is never a chroot source.
    refused = await import_image(api, events, name="self", source=str(builder.data))
    assert "contains wolfpack's own" in refused.reason


async def test_delete_forgets_the_image_and_its_rootfs_but_keeps_blobs(
    builder: Builder, api: httpx.AsyncClient, events: Watcher, busybox_tarball: Path
) -> None:
    built = await import_image(api, events, name="doomed", source=str(busybox_tarball))
    assert (await api.delete("/images/doomed")).status_code == 204
    _, deleted = await events.wait("doomed", ("deleted",))
    assert deleted["revision"] > built.revision  # the delete's own
    assert await read_kv(builder.nats_url, "doomed") is None
    assert not (builder.data / "images" / "doomed").exists()
    assert blob(builder.data, built.image_digest).is_file()  # for gc to decide
    assert (await api.get("/images/doomed")).status_code == 404
    assert (await api.delete("/images/doomed")).status_code == 404


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"name": "-x", "source": "/a.tar"}, "name", "not a valid image name"),
        ({"name": "a/b", "source": "/a.tar"}, "name", "not a valid image name"),
        ({"name": "ok", "source": "rel/a.tar"}, "source", "absolute path"),
        ({"name": "ok", "source": "ftp://x/y"}, "source", "unknown transport"),
        ({"name": "ok", "source": "docker://x/Y:1"}, "source", "bad repository"),
        ({"name": "ok", "source": "/a.tar", "platform": "amd64"}, "platform", "bad platform"),
        ({"name": "ok", "source": "/a.tar", "compression": "xz"}, "compression", "'xz'"),
        ({"name": "ok", "source": "/a.tar", "creds": "nopassword"}, "creds", "user:password"),
        ({"name": "ok", "source": "/a.tar", "color": "red"}, "color", "unknown field"),
    ],
)
async def test_bad_requests_name_the_field(
    api: httpx.AsyncClient, body: dict[str, str], field: str, words: str
) -> None:
    r = await api.post("/images", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field and words in r.json()["error"]


async def test_unknown_images_and_missing_tokens(builder: Builder, api: httpx.AsyncClient) -> None:
    for method, path in (
        ("GET", "/images/nope"),
        ("POST", "/images/nope:build"),
        ("DELETE", "/images/nope"),
        ("GET", "/images/nope/job"),
    ):
        r = await api.request(method, path)
        assert r.status_code == 404 and "nope" in r.json()["error"], (method, path)
    async with httpx.AsyncClient(base_url=builder.url + "/api/v1") as anonymous:
        r = await anonymous.post("/images", json={"name": "x", "source": "/x.tar"})
        assert r.status_code == 401
        assert (await anonymous.get("/images")).status_code == 401
        r = await anonymous.post("/webhooks/registry", json={"events": []})
        assert r.status_code == 401


async def test_a_dotted_name_is_one_subject_token(
    builder: Builder, api: httpx.AsyncClient, events: Watcher, busybox_tarball: Path
) -> None:
    built = await import_image(api, events, name="rocky-9.4", source=str(busybox_tarball))
    assert built.name == "rocky-9.4"
    seen = [msg for msg in events.raw if "rocky" in msg]
    assert seen and all(s.startswith("wolfpack.image.rocky-9%2E4.") for s in seen)
    assert (await api.get("/images/rocky-9.4")).json()["name"] == "rocky-9.4"
