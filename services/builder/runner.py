"""Running a job: its staging folder, its progress events, and its end. A job writes state
first, then the event: the rootfs and chunk index are swapped in, KV is written
(compare-and-set against what the job started from; if that fails the swap is undone), and
only then `built` goes out. A failure anywhere leaves KV, the rootfs and the blobs as the last
good build left them, and `failed` says why. What stopped a job may also be NATS being
unavailable: then the job raises BusOutage, so the event that started it is not acknowledged
and is handed over again once NATS is back — an accepted import or build (requested.py) goes
back to `queued` and runs again under the same id, a push's job ends `failed` and the push is
handled again as a new job. A fault of the request, or a full store, ends `failed`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import msgspec
import nats.errors

from libs.common import subjects
from libs.common.bus.announce import Announcement
from libs.common.bus.publisher import Publisher
from libs.common.errors import Conflict, NotFound
from libs.common.http.errors import BUS_UNAVAILABLE
from libs.common.models.image import (
    ImageBuilt,
    ImageFailed,
    ImageJob,
    ImageMeta,
    ImageProgress,
)
from services.builder import pipeline
from services.builder.failures import failure_reason
from services.builder.jobs import JobTable, ProgressFeed, finish
from services.builder.layout import Layout
from services.builder.pipeline import Built, Installed, Staging
from services.builder.protocols import ImageBucket
from services.builder.records import changed_fields

log = logging.getLogger("wolfpack.builder")

# Seconds a job cut short by a stop may take to say so.
STOP_NOTICE = 2.0
# NATS down, restarting or too slow to answer: nothing wrong with the job, try it again later.
# (A full JetStream store is an APIError, not here: the admin must act, the job fails.)
BUS_DOWN = (
    *BUS_UNAVAILABLE,
    nats.errors.ConnectionReconnectingError,
    nats.errors.NoServersError,
    nats.errors.FlushTimeoutError,
)


class BusOutage(Exception):
    """NATS being unavailable cut a job short: nothing is wrong with the job, the event that
    started it is handed over again (with the consumer's backoff)."""


class Ending(msgspec.Struct):
    """How a job ended: its state and the event that says so."""

    state: str
    verb: subjects.Verb
    event: msgspec.Struct
    # The event went with the job's KV write (the images relay publishes it): not again.
    announced: bool = False


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

    async def run_and_wait(self, job: ImageJob, work: Work, *, resumable: bool = False) -> None:
        """Run `work` as `job` in a task of the job table (the builder's stop cancels it) and
        wait for its end. The caller handles an event of a durable consumer: a stop becomes
        an error, so the event is not acknowledged and is handed over again."""
        task = self._jobs.spawn(self.run(job, work, resumable=resumable), job)
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and not (current and current.cancelling()):
                raise RuntimeError(
                    f"the builder stopped during {job.kind} job {job.id} of image {job.name}; "
                    "it is handled again when the builder is back"
                ) from None
            raise

    async def run(self, job: ImageJob, work: Work, *, resumable: bool = False) -> None:
        """Run `work` as `job`: its staging folder, its progress, its last event. A
        `resumable` job cut short by a stop says nothing: its request is handed over again
        and the job goes on, under the same id, when the builder is back; one that NATS
        being unavailable cut short is queued again. Another job (a push's) ends `failed`
        either way. Both raise, so the event that started the job is handed over again."""
        feed = ProgressFeed(job, self._publish_progress)
        try:
            ending = await self._attempt(job, work, feed)
        except BusOutage as outage:
            if resumable:
                self._jobs.requeue(
                    job, f"{outage}; the job runs again, under the same id, when NATS is back"
                )
            else:
                await self._cut_short(job, f"{outage}; the push is handled again when NATS is back")
            raise
        except asyncio.CancelledError:
            if resumable:
                self._jobs.drop(job)
            else:
                await self._cut_short(
                    job, "the builder stopped before the job ended; start it again"
                )
            raise
        finally:
            await feed.close()  # the progress goes out before the job's last event
        if ending.announced:
            return  # ended by commit, as its event went out
        finish(job, ending.state, getattr(ending.event, "reason", None))
        self._jobs.release(job)
        try:
            await self._publisher.publish(subjects.image(job.name, ending.verb), ending.event)
        except Exception as err:
            log.error("could not publish %s of image %s: %s", ending.verb, job.name, err)

    async def _cut_short(self, job: ImageJob, reason: str) -> None:
        """End `job` failed, saying so if the broker still listens (it may be going too)."""
        finish(job, "failed", reason)
        self._jobs.release(job)
        failed = ImageFailed(
            name=job.name, job=job.id, kind=job.kind, phase=job.phase, reason=reason
        )
        with contextlib.suppress(Exception):
            async with asyncio.timeout(STOP_NOTICE):
                await self._publisher.publish(subjects.image(job.name, "failed"), failed)

    async def _attempt(self, job: ImageJob, work: Work, feed: ProgressFeed) -> Ending:
        """`work` in a fresh staging folder, removed before the job ends whatever happens."""
        staging: Staging | None = None
        try:
            staging = Staging(folder=await asyncio.to_thread(self._layout.job_dir, job.id))
            return await work(job, feed, staging)
        except Exception as exc:
            outage = bus_outage(exc)
            if outage is not None:  # nothing wrong with the job: it is tried again
                doing = f" in phase {job.phase}" if job.phase else ""
                log.warning("%s of image %s stopped%s: NATS is unavailable (%s)", job.kind,
                            job.name, doing, outage)  # fmt: skip
                raise BusOutage(f"NATS was unavailable ({outage}){doing}") from exc
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
        build = built.build
        event = ImageBuilt(
            name=meta.name,
            job=job.id,
            kind=job.kind,
            revision=0,  # the write's, filled in by the relay
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
        await asyncio.to_thread(installed.install)
        try:
            if set_creds:
                await asyncio.to_thread(self._layout.write_creds, meta.name, creds)
            announce = Announcement(subjects.image(meta.name, "built"), event)
            revision = await self._store_meta(meta, base, announce)
        except BaseException:
            await asyncio.shield(asyncio.to_thread(installed.undo))
            raise
        # Ended before anything else runs: whoever got the event finds the job over.
        finish(job, "built")
        self._jobs.release(job)
        event = msgspec.structs.replace(event, revision=revision)
        return Ending("built", "built", event, announced=True)

    async def _store_meta(
        self, meta: ImageMeta, base: ImageMeta | None, announce: Announcement
    ) -> int:
        try:
            if base is None:
                return await self._bucket.create(meta.name, meta, announce)
            return await self._bucket.update(meta.name, meta, base.revision, announce)
        except (Conflict, NotFound):
            raise Conflict(
                f"image {meta.name!r} was changed elsewhere while this job ran; run it again",
                field="name",
            ) from None

    async def _publish_progress(self, progress: ImageProgress) -> None:
        await self._publisher.publish(subjects.image(progress.name, "progress"), progress)


def bus_outage(exc: BaseException) -> str | None:
    """What NATS said, if `exc` (or an error it wraps) is NATS being unavailable."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, BUS_DOWN):
            return str(seen) or type(seen).__name__
        seen = seen.__cause__
    return None
