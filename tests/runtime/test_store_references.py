"""Reading what references the blobs (for gc and fsck) from a real nats-server and DATA:
every reference or none, so gc fails closed."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from libs.common import names
from libs.common.bus.connection import Bus
from libs.common.bus.server import NatsServer
from libs.common.store.cas import ContentStore
from libs.runtime.store_refs import ReferencesUnavailable, read_references
from tests.cli import run_cli

HOUR = 3600.0


async def orphan(store: ContentStore, content: bytes, seconds: float) -> str:
    digest = await store.put_bytes(content)
    then = time.time() - seconds
    os.utime(store.path(digest), (then, then))
    return digest


async def test_an_unreadable_manifest_makes_gc_remove_nothing(
    bus: Bus, nats_server: NatsServer, data_dir: Path
) -> None:
    store = ContentStore(data_dir / "cas")
    old = await orphan(store, b"maybe what the unreadable manifest names", 2 * HOUR)
    kv = await bus.js.key_value(names.BUCKET_BOOT)
    await kv.put("n9", b"{not json")

    with pytest.raises(ReferencesUnavailable, match=r"KV `boot`.*n9 in boot is unreadable"):
        await read_references(nats_server.url, data_dir)
    done = run_gc(data_dir, "--nats", nats_server.url, "--grace", "0")
    assert done.returncode == 1 and "n9 in boot is unreadable" in done.stderr
    assert "nothing was removed" in done.stderr and store.exists(old)


async def test_a_nats_without_the_buckets_is_not_trusted(
    nats_server: NatsServer, data_dir: Path
) -> None:
    with pytest.raises(ReferencesUnavailable, match=r"KV `boot` .* does not exist"):
        await read_references(nats_server.url, data_dir)


async def test_an_unreadable_chunk_index_makes_gc_remove_nothing(
    bus: Bus, nats_server: NatsServer, data_dir: Path
) -> None:
    index = data_dir / "images" / "rocky" / "chunks.json"
    index.parent.mkdir(parents=True)
    index.write_text('{"format": 1, "chunks": [["key", ')
    with pytest.raises(ReferencesUnavailable, match=f"chunk index {index} is unreadable"):
        await read_references(nats_server.url, data_dir)


async def test_chunk_indexes_of_images_and_of_jobs_under_way_are_references(
    bus: Bus, nats_server: NatsServer, data_dir: Path
) -> None:
    kept, staged, image = (hashlib.sha256(t).hexdigest() for t in (b"k", b"s", b"i"))
    images = data_dir / "images"
    (images / "rocky").mkdir(parents=True)
    (images / "rocky" / "chunks.json").write_text(
        json.dumps({"format": 1, "image": image, "chunks": [["key1", kept]]})
    )
    (images / ".staging" / "job-7").mkdir(parents=True)
    (images / ".staging" / "job-7" / "chunks.json").write_text(
        json.dumps({"format": 1, "image": "", "chunks": [["key2", staged]]})
    )
    found = await read_references(nats_server.url, data_dir)
    assert set(found) == {kept, staged, image}
    assert [str(r) for r in found.of(staged)] == [
        "chunk index of image job-7 (a builder job) (chunk)"
    ]


def run_gc(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("wolfpack", "gc", "--data", str(data), *args, within=120)
