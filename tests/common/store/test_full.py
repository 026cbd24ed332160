"""StoreFull: the one error every store write raises on a full disk or quota."""

from __future__ import annotations

import copy
import errno
import os
import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest

from libs.common.store.cas import ContentStore
from libs.common.store.full import StoreFull, is_full
from tests.needs import tmpfs


def test_quota_and_space_read_alike_and_name_the_store(tmp_path: Path) -> None:
    full = StoreFull(errno.ENOSPC, tmp_path / "cas")
    quota = StoreFull(errno.EDQUOT, tmp_path / "cas")
    assert isinstance(full, OSError) and full.errno == errno.ENOSPC
    assert full.strerror == f"no space left on the device of the store {tmp_path / 'cas'}"
    assert quota.errno == errno.EDQUOT
    assert quota.strerror and quota.strerror.startswith("no space left (disk quota exceeded)")
    assert "wolfpack gc" in full.advice
    # Measured on the file system the store would be on, though it is not made yet: more than
    # nothing, no more than that file system holds. (Not equal to a second reading: other
    # writers change the free space in between.)
    assert not (tmp_path / "cas").exists()
    disk = os.statvfs(tmp_path)
    assert 0 < full.free <= disk.f_blocks * disk.f_frsize
    for again in (copy.copy(full), pickle.loads(pickle.dumps(quota))):
        assert isinstance(again, StoreFull) and again.root == tmp_path / "cas"


def test_is_full_looks_through_wrapping_errors() -> None:
    try:
        try:
            raise OSError(errno.EDQUOT, "Disk quota exceeded")
        except OSError as err:
            raise RuntimeError("the job failed") from err
    except RuntimeError as wrapped:
        assert is_full(wrapped)
    assert not is_full(OSError(errno.EACCES, "Permission denied"))


@pytest.fixture
def tiny(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "tiny", "size=1m") as mount:
        yield mount


async def test_every_store_write_raises_store_full(tiny: Path) -> None:
    store = ContentStore(tiny / "cas")
    kept = await store.put_bytes(b"kept\n")
    writes = [
        store.put_bytes(os.urandom(2 << 20)),
        store.put_many([os.urandom(600 << 10), os.urandom(600 << 10)]),
    ]
    for write in writes:
        with pytest.raises(StoreFull) as caught:
            await write
        assert caught.value.root == tiny / "cas"
        assert caught.value.free < 1 << 20
    assert [p.name for p in (tiny / "cas").rglob("*") if p.is_file()] == [kept]
    assert (await store.get_bytes(kept)) == b"kept\n"
