"""The content-addressed store on a real file system."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from libs.common.errors import Invalid, NotFound
from libs.common.store.cas import TEMP_PREFIX, ContentStore, parse_digest
from tests.needs import tmpfs

HELLO = b"hello, node\n"
HELLO_DIGEST = hashlib.sha256(HELLO).hexdigest()


@pytest.fixture
def store(data_dir: Path) -> ContentStore:
    return ContentStore(data_dir / "cas")


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


async def test_put_bytes_stores_under_the_digest(store: ContentStore) -> None:
    digest = await store.put_bytes(HELLO)
    assert digest == HELLO_DIGEST
    path = store.root / "sha256" / digest[:2] / digest
    assert store.path(digest) == path
    assert path.read_bytes() == HELLO
    assert store.exists(digest) and store.exists(f"sha256:{digest}")
    assert store.size(digest) == len(HELLO)
    assert await store.get_bytes(digest) == HELLO
    with store.open(digest) as blob:
        assert blob.read() == HELLO
    assert list(store.iter_digests()) == [digest]


async def test_expected_digest_is_checked(store: ContentStore) -> None:
    assert await store.put_bytes(HELLO, expected=f"sha256:{HELLO_DIGEST}") == HELLO_DIGEST


async def test_mismatch_leaves_nothing_behind(store: ContentStore) -> None:
    wrong = "0" * 64
    with pytest.raises(Invalid, match=f"digest mismatch: expected {wrong}, got {HELLO_DIGEST}"):
        await store.put_bytes(HELLO, expected=wrong)
    assert not store.exists(wrong)
    assert not store.exists(HELLO_DIGEST)
    assert files_under(store.root) == []


async def test_put_stream_and_put_file_hash_large_content(
    store: ContentStore, tmp_path: Path
) -> None:
    content = os.urandom(3 * (1 << 20) + 17)
    digest = hashlib.sha256(content).hexdigest()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(content), 65536):
            yield content[start : start + 65536]

    assert await store.put_stream(chunks(), expected=digest) == digest
    assert store.path(digest).read_bytes() == content

    source = tmp_path / "image.img"
    source.write_bytes(content[::-1])
    other = await store.put_file(source)
    assert other == hashlib.sha256(content[::-1]).hexdigest()
    assert sorted(store.iter_digests()) == sorted([digest, other])


async def test_a_failing_stream_leaves_nothing_behind(store: ContentStore) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"x" * (2 << 20)
        raise ConnectionError("registry went away")

    with pytest.raises(ConnectionError):
        await store.put_stream(broken())
    assert files_under(store.root) == []


async def test_an_existing_blob_is_not_rewritten(store: ContentStore) -> None:
    digest = await store.put_bytes(HELLO)
    before = store.path(digest).stat()
    await store.put_bytes(HELLO)
    after = store.path(digest).stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


async def test_concurrent_puts_of_the_same_content(store: ContentStore) -> None:
    content = os.urandom(1 << 20)
    digests = await asyncio.gather(*(store.put_bytes(content) for _ in range(8)))
    assert set(digests) == {hashlib.sha256(content).hexdigest()}
    assert files_under(store.root) == [store.path(digests[0])]
    assert store.path(digests[0]).read_bytes() == content


@pytest.mark.parametrize(
    "text",
    [
        "../..",
        "sha256:../../etc/passwd",
        "../" + "a" * 61,
        "a" * 63,
        "a" * 65,
        "g" * 64,
        "sha512:" + "a" * 64,
        "",
        "a" * 62 + "/a",
    ],
)
def test_parse_digest_rejects_anything_but_a_sha256(store: ContentStore, text: str) -> None:
    with pytest.raises(Invalid) as caught:
        parse_digest(text)
    assert caught.value.field == "digest"
    with pytest.raises(Invalid):
        store.path(text)


def test_parse_digest_normalises() -> None:
    assert parse_digest(f"sha256:{HELLO_DIGEST.upper()}") == HELLO_DIGEST


async def test_missing_blobs_are_not_found(store: ContentStore) -> None:
    with pytest.raises(NotFound, match=f"blob {HELLO_DIGEST} not in the store"):
        store.open(HELLO_DIGEST)
    with pytest.raises(NotFound):
        await store.get_bytes(HELLO_DIGEST)
    with pytest.raises(NotFound):
        store.size(HELLO_DIGEST)
    assert not store.exists(HELLO_DIGEST)
    assert list(store.iter_digests()) == []


async def test_iter_digests_skips_temporary_and_stray_files(store: ContentStore) -> None:
    digest = await store.put_bytes(HELLO)
    folder = store.path(digest).parent
    (folder / f"{TEMP_PREFIX}abc").write_bytes(b"partial")
    (folder / "README").write_text("not a blob")
    (store.root / "sha256" / f"{TEMP_PREFIX}xyz").write_bytes(b"partial")
    assert list(store.iter_digests()) == [digest]
    assert store.remove_stale_temps(older_than=0) == 2
    assert list(store.iter_digests()) == [digest]


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, where a bigger blob hits ENOSPC for real (needs root)."""
    with tmpfs(tmp_path / "tiny", "size=1m") as mount:
        yield mount


async def test_a_full_disk_leaves_no_partial_blob(tiny_disk: Path) -> None:
    store = ContentStore(tiny_disk / "cas")
    with pytest.raises(OSError, match="no space left") as caught:
        await store.put_bytes(os.urandom(2 << 20))
    assert caught.value.errno == errno.ENOSPC
    assert files_under(store.root) == []
    # The space is given back: a small blob still fits.
    assert await store.put_bytes(HELLO) == HELLO_DIGEST


async def test_a_full_disk_in_batch_and_concat_writes_names_the_store(tiny_disk: Path) -> None:
    store = ContentStore(tiny_disk / "cas")
    with pytest.raises(OSError, match="no space left on the device of the store") as caught:
        await store.put_many([os.urandom(400 << 10) for _ in range(3)])
    assert caught.value.errno == errno.ENOSPC
    assert files_under(store.root) == []
    parts = [await store.put_bytes(os.urandom(300 << 10)) for _ in range(2)]
    with pytest.raises(OSError, match="no space left on the device of the store") as caught:
        await store.put_concat(parts)
    assert caught.value.errno == errno.ENOSPC
    assert sorted(path.name for path in files_under(store.root)) == sorted(parts)
