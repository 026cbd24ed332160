"""A builder stopped in the middle of a job, killed or politely: while it is down the last good
image is what KV names (rootfs and blobs as they were, no blob half written, and no `failed`
either: the job is not over); the next start removes the staging folder and runs the job again
under the same id, to its end."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
from pathlib import Path

import pytest

from libs.common.bus.server import NatsServer
from tests.builder.helpers import (
    Builder,
    busybox_rootfs,
    import_image,
    launch_builder,
    read_kv,
    start_import,
    tarball,
    watching,
)
from tests.builder.vnfs.helpers import describe
from tests.stack import stop_process
from tests.waiting import eventually

NAME = "steady"


def trees(folder: Path) -> tuple[Path, Path]:
    """A small good tarball and a slow one (64 MiB that does not compress)."""
    good = tarball(busybox_rootfs(folder / "good"), folder / "good.tar.gz")
    slow_tree = busybox_rootfs(folder / "slow")
    (slow_tree / "srv").mkdir()
    for number in range(64):
        (slow_tree / "srv" / f"blob-{number:02d}").write_bytes(os.urandom(1 << 20))
    return good, tarball(slow_tree, folder / "slow.tar.gz")


def whole_blobs(data: Path) -> None:
    """Every blob path holds exactly the content its name says."""
    for path in (data / "cas" / "sha256").glob("*/*"):
        if not path.name.startswith("."):
            assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name, path


def staging(data: Path) -> list[str]:
    return sorted(p.name for p in (data / "images" / ".staging").iterdir())


@pytest.mark.parametrize("how", ["kill", "terminate"])
async def test_a_builder_stopped_mid_job_keeps_the_last_good_image_then_ends_the_job(
    nats_server: NatsServer, tmp_path: Path, how: str
) -> None:
    good, slow = await asyncio.to_thread(trees, tmp_path)
    data = tmp_path / "data"
    builder: Builder = await asyncio.to_thread(launch_builder, data, nats_server.url)
    try:
        async with watching(nats_server.url) as events, builder.client() as api:
            await import_image(api, events, name=NAME, source=str(good))
            before = await read_kv(nats_server.url, NAME)
            assert before is not None
            tree = await asyncio.to_thread(describe, data / "images" / NAME / "rootfs")

            job = await start_import(api, name=NAME, source=str(slow))
            # Mid-job: the new rootfs is unpacked and chunks are being stored.
            await events.wait(NAME, ("progress",), job.id, where=lambda p: p.phase == "compress")
            if how == "kill":
                builder.process.send_signal(signal.SIGKILL)
                await asyncio.to_thread(builder.process.wait)
            else:
                await asyncio.to_thread(stop_process, builder.process)
                assert staging(data) == []
            await events.nc.flush()  # whatever the builder said before it went has arrived
            assert not events.of(NAME, "built", job=job.id)
            assert not events.of(NAME, "failed", job=job.id)  # the job is handed over again
            await asyncio.to_thread(whole_blobs, data)
            assert await read_kv(nats_server.url, NAME) == before
            assert await asyncio.to_thread(describe, data / "images" / NAME / "rootfs") == tree

            stale = set(staging(data))
            builder = await asyncio.to_thread(launch_builder, data, nats_server.url)
            assert not stale & set(staging(data))
            built = await events.end_of(NAME, job.id)
            assert type(built).__name__ == "ImageBuilt", built
            # The event goes out with the KV write; the job's folder goes a moment later.
            await eventually(lambda: staging(data) == [] or None, "staging emptied", within=10)
            await asyncio.to_thread(whole_blobs, data)
            after = await read_kv(nats_server.url, NAME)
            assert after is not None and after.image_digest == built.image_digest
            assert after.revision == built.revision > before.revision
            async with builder.client() as again:  # a new process, on a new port
                r = await again.get(f"/images/{NAME}/job")
                assert r.status_code == 200 and r.json()["id"] == job.id
    finally:
        await asyncio.to_thread(stop_process, builder.process)
