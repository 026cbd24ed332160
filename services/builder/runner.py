"""Running a job: its staging folder, its progress events, and its end. A job writes state
first, then the event: the rootfs and chunk index are swapped in, KV is written
(compare-and-set against what the job started from; if that fails the swap is undone), and
only then `built` goes out. A failure anywhere leaves KV, the rootfs and the blobs as the last
good build left them, and `failed` says why."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import msgspec

from libs.common.errors import Conflict, NotFound
from libs.common.models.image import (
    ImageBuilt,
    ImageFailed,
    ImageJob,
    ImageMeta,
    ImageProgress,
    image_subject,
)
from services.builder import pipeline
from services.builder.failures import failure_reason
from services.builder.jobs import JobTable, ProgressFeed, finish
from services.builder.layout import Layout
from services.builder.pipeline import Built, Installed, Staging
from services.builder.ports import ImageBucket, Publisher
from services.builder.records import changed_fields

log = logging.getLogger("wolfpack.builder")

# Seconds a job cut short by a stop may take to say so.
STOP_NOTICE = 2.0


class Ending(msgspec.Struct):
    """How a job ended: its state and the event that says so."""

    state: str
    verb: str
    event: msgspec.Struct


Work = Callable[[ImageJob, ProgressFeed, Staging], Awaitable[Ending]]


class JobRunner:
    """Runs a job's work and ends it (see the module doc); the work is the caller's."""

    def __init__(
        self,
        bucket: ImageBucket,
        publisher: Publisher,
        layout: Layout,
        jobs: JobTable,
    ) -> None:
        self._bucket = bucket
        self._publisher = publisher
        self._layout = layout
        self._jobs = jobs

    async def run(self, job: ImageJob, work: Work, *, resumable: bool = False) -> None:
        """Run `work` as `job`: its staging folder, its progress, its last event. A
        `resumable` job cut short by a stop says nothing: its request is handed over again
        and the job goes on, under the same id, when the builder is back."""
        feed = ProgressFeed(job, self._publish_progress)
        try:
            ending = await self._attempt(job, work, feed)
        except asyncio.CancelledError:
            if resumable:
                self._jobs.drop(job)
                raise
            reason = "the builder stopped before the job ended; start it again"
            finish(job, "failed", reason)
            self._jobs.release(job)
            stopped = ImageFailed(
                name=job.name, job=job.id, kind=job.kind, phase=job.phase, reason=reason
            )
            with contextlib.suppress(Exception):  # best effort: the broker may be going too
                async with asyncio.timeout(STOP_NOTICE):
                    await self._publisher.publish(image_subject(job.name, "failed"), stopped)
            raise
        finally:
            await feed.close()  # the progress goes out before the job's last event
        finish(job, ending.state, getattr(ending.event, "reason", None))
        self._jobs.release(job)
        try:
            await self._publisher.publish(image_subject(job.name, ending.verb), ending.event)
        except Exception as err:
            log.error("could not publish %s of image %s: %s", ending.verb, job.name, err)

    async def _attempt(self, job: ImageJob, work: Work, feed: ProgressFeed) -> Ending:
        """`work` in a fresh staging folder, removed before the job ends whatever happens."""
        staging: Staging | None = None
        try:
            staging = Staging(folder=await asyncio.to_thread(self._layout.job_dir, job.id))
            return await work(job, feed, staging)
        except Exception as exc:
            reason = failure_reason(exc, job.phase, job.source)
            log.warning("%s of image %s failed: %s", job.kind, job.name, reason)
            failed = ImageFailed(
                name=job.name, job=job.id, kind=job.kind, phase=job.phase, reason=reason
            )
            return Ending("failed", "failed", failed)
        finally:
            if staging is not None:
                await asyncio.shield(asyncio.to_thread(pipeline.discard, staging))

    async def commit(
        self,
        job: ImageJob,
        base: ImageMeta | None,
        meta: ImageMeta,
        built: Built,
        staging: Staging,
        *,
        creds: str | None = None,
        set_creds: bool = False,
    ) -> Ending:
        """Swap the new rootfs and index in, write KV; undo the swap if KV refuses."""
        installed = Installed(
            self._layout, meta.name, staging, new_rootfs=built.imported is not None
        )
        await asyncio.to_thread(installed.install)
        try:
            if set_creds:
                await asyncio.to_thread(self._layout.write_creds, meta.name, creds)
            revision = await self._store_meta(meta, base)
        except BaseException:
            await asyncio.shield(asyncio.to_thread(installed.undo))
            raise
        build = built.build
        event = ImageBuilt(
            name=meta.name,
            job=job.id,
            kind=job.kind,
            revision=revision,
            image_digest=meta.image_digest,
            kernel_digest=meta.kernel_digest,
            kernel_version=meta.kernel_version,
            source_digest=meta.source_digest,
            size=meta.size,
            files=build.files,
            chunks_total=build.chunks_total,
            chunks_reused=build.chunks_reused,
            build_seconds=build.seconds,
            seconds=time.time() - job.started_at,
            changed=changed_fields(base, meta),
        )
        return Ending("built", "built", event)

    async def _store_meta(self, meta: ImageMeta, base: ImageMeta | None) -> int:
        try:
            if base is None:
                return await self._bucket.create(meta.name, meta)
            return await self._bucket.update(meta.name, meta, base.revision)
        except (Conflict, NotFound):
            raise Conflict(
                f"image {meta.name!r} was changed elsewhere while this job ran; run it again",
                field="name",
            ) from None

    async def _publish_progress(self, progress: ImageProgress) -> None:
        await self._publisher.publish(image_subject(progress.name, "progress"), progress)
