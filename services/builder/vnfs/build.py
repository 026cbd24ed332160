"""rootfs → bootable image: a concatenation of independently compressed newc chunks, in the store.

The kernel unpacks concatenated compressed cpio archives in order, so an image is chunk blobs
laid end to end. A chunk whose key (chunks.py) is in the image's index and whose blob is still
in the store is reused without reading its files; the others are written and compressed on
`workers` threads at a time (zlib-ng, zstd and the file reads release the GIL). Memory holds
a few chunks at most: a chunk bigger than its planned maximum (one huge file) is streamed.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from pathlib import Path

import msgspec

from libs.common.store.cas import ContentStore
from libs.common.store.chunk_index import ChunkIndex, load_index, save_index
from services.builder.vnfs.chunks import ChunkPlan, ChunkSettings, plan_chunks
from services.builder.vnfs.compress import Codec, Compression, compress_buffer
from services.builder.vnfs.cpio import fill_archive
from services.builder.vnfs.entries import Entry
from services.builder.vnfs.excludes import build_excludes
from services.builder.vnfs.progress import BuildProgress, ProgressCallback, Throttle
from services.builder.vnfs.scan import scan_rootfs
from services.builder.vnfs.stream import stream_chunk


class BuildResult(msgspec.Struct, kw_only=True):
    image_digest: str
    size: int
    files: int
    chunks_total: int
    chunks_reused: int
    seconds: float


async def build_image(
    rootfs: Path,
    store: ContentStore,
    *,
    index_path: Path,
    compression: Codec = "gzip",
    level: int | None = None,
    excludes: Sequence[str] | None = None,
    on_progress: ProgressCallback | None = None,
    workers: int | None = None,
    chunking: ChunkSettings | None = None,
) -> BuildResult:
    """Build the image of `rootfs` into `store`; `index_path` remembers this image's chunks.

    `excludes`: patterns in `/etc/warewulf/excludes` syntax that replace the builder defaults
    (None keeps them); the image's own excludes file always applies on top.
    """
    started = time.perf_counter()
    settings = Compression.of(compression, level)
    threads = workers or len(os.sched_getaffinity(0)) or 1
    report = Throttle(on_progress)
    report(BuildProgress(phase="scan"))

    def prepare() -> tuple[list[Entry], list[ChunkPlan], ChunkIndex]:
        entries = scan_rootfs(rootfs, build_excludes(rootfs, excludes))
        plans = plan_chunks(entries, settings, chunking or ChunkSettings())
        return entries, plans, load_index(index_path)

    entries, plans, index = await asyncio.to_thread(prepare)
    known = index.digests_by_key()
    digests: list[str | None] = [
        digest if (digest := known.get(plan.key)) and store.exists(digest) else None
        for plan in plans
    ]
    reused = sum(digest is not None for digest in digests)
    progress = BuildProgress(
        phase="compress",
        files_total=len(entries),
        bytes_total=sum(plan.size for plan in plans),
        chunks_reused=reused,
    )
    for plan, digest in zip(plans, digests, strict=True):
        if digest is not None:
            progress.files_done += plan.end - plan.start
            progress.bytes_done += plan.size
    report(progress)

    limit = (chunking or ChunkSettings()).max_size
    root = os.fsencode(rootfs)
    slots = asyncio.Semaphore(threads)

    failures: list[BaseException] = []

    async def build_one(number: int, plan: ChunkPlan) -> None:
        async with slots:
            if failures:
                return  # another chunk failed: start nothing new
            members = entries[plan.start : plan.end]
            if plan.size <= limit:
                data = await asyncio.to_thread(
                    _compressed_chunk, root, members, plan.size, settings
                )
                digests[number] = await store.put_bytes(data)
            else:
                digests[number] = await stream_chunk(store, root, members, settings, threads)
        progress.files_done += plan.end - plan.start
        progress.bytes_done += plan.size
        progress.chunks_built += 1
        report(progress)

    async def guarded(number: int, plan: ChunkPlan) -> None:
        try:
            await build_one(number, plan)
        except Exception as err:
            failures.append(err)

    # Largest first, so a big chunk does not start last and leave a core idle. On a failure the
    # chunks under way finish (not cancelled: their store writes end cleanly), then it is raised.
    order = sorted(enumerate(plans), key=lambda item: -item[1].size)
    await asyncio.gather(*(guarded(n, plan) for n, plan in order if digests[n] is None))
    if failures:
        raise failures[0]

    done = [digest for digest in digests if digest is not None]
    size = sum(store.size(digest) for digest in done)
    previous = [digest for _, digest in index.chunks]
    if done == previous and index.image and store.exists(index.image):
        image = index.image  # same chunks as last time: the image blob is already there
    else:
        report(msgspec.structs.replace(progress, phase="assemble", bytes_done=0, bytes_total=size))
        image = await store.put_concat(done)
    new_index = ChunkIndex(
        image=image, chunks=[(plan.key, digest) for plan, digest in zip(plans, done, strict=True)]
    )
    await asyncio.to_thread(save_index, index_path, new_index)
    final = msgspec.structs.replace(progress, phase="assemble", bytes_done=size, bytes_total=size)
    report(final, force=True)
    return BuildResult(
        image_digest=image,
        size=size,
        files=len(entries),
        chunks_total=len(plans),
        chunks_reused=reused,
        seconds=time.perf_counter() - started,
    )


def _compressed_chunk(
    root: bytes, entries: Sequence[Entry], size: int, settings: Compression
) -> bytes:
    archive = bytearray(size)
    with memoryview(archive) as view:
        written = fill_archive(root, entries, view)
    if written != size:  # the plan and the writer disagree: a bug, never a silent bad image
        raise RuntimeError(f"chunk archive is {written} bytes, planned {size}")
    return compress_buffer(archive, settings)
