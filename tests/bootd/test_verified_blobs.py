"""bootd never serves a blob whose bytes do not hash to its name: a corrupt one gets a 500
naming it, on every route and for Range and HEAD; a good one is hashed once, however many
nodes ask at once, and again only when its file changes. The Verifier itself, in-process."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import httpx
import pytest

from libs.common import subjects
from libs.common.bus.connection import Bus
from libs.common.errors import NotFound
from libs.common.models.boot_stage import BootStage
from libs.common.store.cas import ContentStore
from libs.common.store.verified import BlobCorrupt, Verifier
from tests.bootd.conftest import (
    Bootd,
    boot_node,
    fresh_mac,
    make_public,
    public_blob,
    script_booting,
)
from tests.needs import need_root


def flip_byte(path: Path, at: int) -> None:
    """Corrupt a blob in place: same file, same size, one byte changed, mtime put back."""
    before = path.stat()
    with open(path, "r+b") as blob:
        blob.seek(at)
        byte = blob.read(1)
        blob.seek(at)
        blob.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def replace_file(path: Path, data: bytes) -> None:
    """Put a new file (new inode) under the blob's name, as a restore or a careless copy."""
    temp = path.with_name(f".replacement-{path.name}")
    temp.write_bytes(data)
    os.rename(temp, path)


async def serving(bootd: Bootd) -> dict[str, int]:
    async with httpx.AsyncClient(base_url=bootd.url, timeout=10) as client:
        answer = await client.get(
            "/api/v1/serving", headers={"Authorization": f"Bearer {bootd.token}"}
        )
    assert answer.status_code == 200, answer.text
    counts: dict[str, int] = answer.json()["verification"]
    return counts


def assert_refused(answer: httpx.Response, digest: str) -> None:
    assert answer.status_code == 500, answer.status_code
    assert "retry-after" not in answer.headers  # iPXE would retry a corrupt blob for ever
    if answer.request.method == "HEAD":
        return
    error = answer.json()["error"]
    assert f"blob {digest} in the store is corrupt" in error and "wolfpack fsck" in error


async def test_a_blob_corrupted_in_place_is_not_served(
    bootd: Bootd, bus: Bus, http: httpx.AsyncClient
) -> None:
    data = os.urandom(2 << 20)
    digest = await public_blob(bus, bootd.store, http, data)
    url = f"/blobs/sha256/{digest}"
    assert (await http.get(url)).content == data
    before = await serving(bootd)
    flip_byte(bootd.store.path(digest), 12345)
    assert_refused(await http.get(url), digest)
    assert_refused(await http.get(url, headers={"Range": "bytes=0-99"}), digest)
    assert_refused(await http.head(url), digest)
    after = await serving(bootd)
    # Hashed once when it changed; the refusals after that come from memory.
    assert after["hashed"] - before["hashed"] == 1
    assert after["corrupt"] - before["corrupt"] == 1
    assert after["refused"] - before["refused"] == 3


async def test_a_blob_corrupt_before_its_first_request_is_not_served(
    bootd: Bootd, bus: Bus, http: httpx.AsyncClient
) -> None:
    data = os.urandom(4096)
    digest = hashlib.sha256(data).hexdigest()
    path = bootd.store.path(digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[:-1] + b"\0")
    await make_public(bus, http, digest, len(data))
    assert_refused(await http.get(f"/blobs/sha256/{digest}"), digest)


async def test_a_nodes_corrupt_kernel_and_system_overlay_are_refused_with_an_event(
    bootd: Bootd, bus: Bus, http: httpx.AsyncClient
) -> None:
    mac = fresh_mac()
    files = await boot_node(bus, bootd.store, "vb1", mac)
    manifest = files.manifest
    assert manifest.kernel_digest is not None
    await script_booting(http, mac)
    events = await bus.subscribe(subjects.node("vb1", "boot"), BootStage)
    try:
        flip_byte(bootd.store.path(manifest.kernel_digest), 0)
        assert_refused(await http.get(f"/kernel/{mac}"), manifest.kernel_digest)
        url = f"/blobs/sha256/{manifest.kernel_digest}?wwid={mac}"
        assert_refused(await http.get(url), manifest.kernel_digest)
        # Two system overlay archives sent end to end: the corrupt second is named.
        second = manifest.system_digests[1]
        flip_byte(bootd.store.path(second), 3)
        assert_refused(await http.get(f"/system/{mac}"), second)
        seen: list[BootStage] = []
        async with asyncio.timeout(10):
            async for _, event in events:
                seen.append(event)
                if event.stage == "system":
                    break
    finally:
        await events.stop()
    # (bootd's publishes are buffered: script fetches from the wait above may come first)
    assert [(e.stage, e.ok, e.error) for e in seen if e.stage != "ipxe"] == [
        ("kernel", False, "HTTP 500"),
        ("kernel", False, "HTTP 500"),
        ("system", False, "HTTP 500"),
    ]
    # The image is untouched and still served.
    assert (await http.get(f"/image/{mac}")).content == files.image


async def test_concurrent_first_requests_share_one_hash(
    bootd: Bootd, bus: Bus, http: httpx.AsyncClient
) -> None:
    data = os.urandom(16 << 20)
    want = hashlib.sha256(data).hexdigest()
    digest = await public_blob(bus, bootd.store, http, data)
    del data
    before = await serving(bootd)

    async def fetch() -> str:
        hasher = hashlib.sha256()
        async with http.stream("GET", f"/blobs/sha256/{digest}") as answer:
            assert answer.status_code == 200
            async for chunk in answer.aiter_raw(1 << 20):
                hasher.update(chunk)
        return hasher.hexdigest()

    assert await asyncio.gather(*(fetch() for _ in range(8))) == [want] * 8
    middle = await serving(bootd)
    assert middle["hashed"] - before["hashed"] == 1
    assert middle["hashed_bytes"] - before["hashed_bytes"] == 16 << 20
    # Later requests for the unchanged file are answered from memory.
    assert await asyncio.gather(*(fetch() for _ in range(3))) == [want] * 3
    after = await serving(bootd)
    assert after["hashed"] == middle["hashed"]
    assert after["hits"] - middle["hits"] == 3


async def test_a_blob_replaced_after_it_was_verified_is_verified_again(
    bootd: Bootd, bus: Bus, http: httpx.AsyncClient
) -> None:
    data = os.urandom(1 << 20)
    digest = await public_blob(bus, bootd.store, http, data)
    url = f"/blobs/sha256/{digest}"
    path = bootd.store.path(digest)
    assert (await http.get(url)).content == data
    before = await serving(bootd)
    replace_file(path, data)  # the same bytes in a new file: hashed again, served
    assert (await http.get(url)).content == data
    middle = await serving(bootd)
    assert middle["hashed"] - before["hashed"] == 1
    replace_file(path, os.urandom(len(data)))  # other bytes, same size: refused
    assert_refused(await http.get(url), digest)
    after = await serving(bootd)
    assert after["hashed"] - middle["hashed"] == 1


async def test_a_corrupt_runtime_overlay_is_not_pushed(
    bootd: Bootd, bus: Bus, http: httpx.AsyncClient
) -> None:
    need_root("listening on a privileged port")
    mac = fresh_mac()
    files = await boot_node(bus, bootd.store, "vb2", mac)
    runtime = files.manifest.runtime_digest
    assert runtime is not None
    await script_booting(http, mac)
    flip_byte(bootd.store.path(runtime), 1)
    for port in range(900, 1000):
        try:
            server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
        except OSError:
            continue
        break
    try:
        answer = await http.get(f"/runtime/{mac}", params={"callback": port})
    finally:
        server.close()
    assert_refused(answer, runtime)


# -- the Verifier in-process --


async def put(tmp_path: Path, data: bytes) -> tuple[ContentStore, str, Path]:
    store = ContentStore(tmp_path / "cas")
    digest = await store.put_bytes(data)
    return store, digest, store.path(digest)


async def test_verifier_hashes_once_for_concurrent_checks(tmp_path: Path) -> None:
    store, digest, path = await put(tmp_path, os.urandom(1 << 20))
    verifier = Verifier(store)
    try:
        await asyncio.gather(*(verifier.check(digest, path.stat()) for _ in range(50)))
        counts = verifier.counts()
        assert (counts.hashed, counts.hits, counts.remembered) == (1, 0, 1)
        await verifier.check(digest, path.stat())
        assert (verifier.counts().hashed, verifier.counts().hits) == (1, 1)
    finally:
        verifier.close()


async def test_verifier_remembers_a_corrupt_file_until_it_changes(tmp_path: Path) -> None:
    data = os.urandom(5000)
    store, digest, path = await put(tmp_path, data)
    verifier = Verifier(store)
    try:
        flip_byte(path, 10)
        for _ in range(3):
            with pytest.raises(BlobCorrupt) as raised:
                await verifier.check(digest, path.stat())
        assert raised.value.digest == digest
        assert raised.value.actual == hashlib.sha256(path.read_bytes()).hexdigest()
        counts = verifier.counts()
        assert (counts.hashed, counts.corrupt, counts.refused) == (1, 1, 3)
        replace_file(path, data)  # repaired
        await verifier.check(digest, path.stat())
        assert verifier.counts().hashed == 2
    finally:
        verifier.close()


async def test_verifier_forgets_the_least_recent_beyond_its_bound(tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "cas")
    digests = [await store.put_bytes(f"blob {i}".encode()) for i in range(3)]
    verifier = Verifier(store, remember=2)
    try:
        for digest in digests:
            await verifier.check(digest, store.path(digest).stat())
        assert verifier.counts().remembered == 2
        await verifier.check(digests[0], store.path(digests[0]).stat())  # forgotten
        assert verifier.counts().hashed == 4
        await verifier.check(digests[2], store.path(digests[2]).stat())  # kept
        assert verifier.counts().hashed == 4
    finally:
        verifier.close()


async def test_verifier_says_not_found_for_a_blob_gone_meanwhile(tmp_path: Path) -> None:
    store, digest, path = await put(tmp_path, b"soon gone")
    found = path.stat()
    path.unlink()
    verifier = Verifier(store)
    try:
        with pytest.raises(NotFound):
            await verifier.check(digest, found)
    finally:
        verifier.close()
