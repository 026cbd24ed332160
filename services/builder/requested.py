"""The jobs the API accepted: recorded on the stream before the 202, then run as the durable
consumer hands their requests over — again after a crash, under the same job id, until one
run ends (`built`, or `failed` for a fault of the request itself).

Running a request twice changes nothing the first run did not: the same source gives the
same blobs (the store keeps one copy) and the same digests, so a second run at most writes KV
again with the same image. A request whose job the stream says ended already is not run
again, and neither is one a later request for the same image replaced (the later one wins,
as it would have had the builder not stopped).
"""

from __future__ import annotations

import asyncio
import logging

import msgspec

from libs.common.cas import ContentStore
from libs.common.errors import Conflict, Invalid, NotFound
from libs.common.models.image import (
    ImageFailed,
    ImageJob,
    ImageRequested,
    ImportRequest,
    image_subject,
)
from services.builder import pipeline
from services.builder.jobs import JobTable, ProgressFeed, finish
from services.builder.layout import Layout
from services.builder.options import check_source, fetch_options
from services.builder.pipeline import Staging
from services.builder.ports import ImageBucket, Publisher, RequestLedger
from services.builder.records import again_record, image_record
from services.builder.runner import Ending, JobRunner, Work

log = logging.getLogger("wolfpack.builder")


class RequestedJobs:
    def __init__(
        self,
        bucket: ImageBucket,
        publisher: Publisher,
        store: ContentStore,
        layout: Layout,
        jobs: JobTable,
        runner: JobRunner,
        ledger: RequestLedger,
    ) -> None:
        self._bucket = bucket
        self._publisher = publisher
        self._store = store
        self._layout = layout
        self._jobs = jobs
        self._runner = runner
        self._ledger = ledger

    async def record(self, job: ImageJob, asked: ImportRequest | None) -> None:
        """Record queued `job` on the stream (its credentials on this builder's disk); the
        job is dropped if that fails, so the caller's error is the whole answer."""
        creds = asked.creds if asked is not None else None
        request = ImageRequested(
            name=job.name,
            job=job.id,
            kind=job.kind,
            source=job.source,
            request=msgspec.structs.replace(asked, creds=None) if asked is not None else None,
            creds=creds is not None,
        )
        try:
            if creds is not None:
                await asyncio.to_thread(self._layout.keep_request_creds, job.id, creds)
            await self._ledger.record(request)
        except BaseException:
            self._jobs.drop(job)
            await asyncio.to_thread(self._layout.forget_request_creds, job.id)
            raise

    async def handle(self, request: ImageRequested) -> None:
        """Run the job of `request` to its end (then the request may be acknowledged); raise
        if the builder stops meanwhile, so the request is handed over again."""
        if self._jobs.ended(request.name, request.job):
            return  # delivered again after it ran here
        try:
            job = await self._take(request)
        except Conflict as replaced:
            await self._give_up(request, replaced.message)
            return
        if job is None:
            await asyncio.to_thread(self._layout.forget_request_creds, request.job)
            return
        work = self._work(request)
        task = self._jobs.spawn(self._runner.run(job, work, resumable=True), job)
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and not (current and current.cancelling()):
                # Not acknowledged: the durable consumer hands the request over again.
                raise RuntimeError(
                    f"the builder stopped during job {job.id} of image {job.name}; it runs "
                    "again when the builder is back"
                ) from None
            raise
        await asyncio.to_thread(self._layout.forget_request_creds, request.job)

    async def _take(self, request: ImageRequested) -> ImageJob | None:
        latest = await self._ledger.last_request(request.name)
        if latest is not None and latest.job != request.job:
            raise Conflict(
                f"a later request for image {request.name!r} (job {latest.job}) replaces this one"
            )
        ended = await self._ledger.ending(request)
        if ended is not None:
            log.info("job %s of image %s ended before; not run again", request.job,
                     request.name)  # fmt: skip
            self._jobs.settle(ended)
            return None
        return await self._jobs.take(request.name, request.kind, request.source, request.job)

    async def _give_up(self, request: ImageRequested, reason: str) -> None:
        log.info("job %s of image %s: %s", request.job, request.name, reason)
        job = ImageJob(id=request.job, name=request.name, kind=request.kind, source=request.source)
        finish(job, "failed", reason)
        self._jobs.settle(job)
        failed = ImageFailed(
            name=request.name, job=request.job, kind=request.kind, phase=None, reason=reason
        )
        await self._publisher.publish(image_subject(request.name, "failed"), failed)
        await asyncio.to_thread(self._layout.forget_request_creds, request.job)

    def _work(self, request: ImageRequested) -> Work:
        if request.kind == "import" and request.request is not None:
            return self._import_work(request, request.request)
        if request.kind == "build":
            return self._build_work(request.name)

        async def refuse(job: ImageJob, feed: ProgressFeed, staging: Staging) -> Ending:
            raise Invalid(f"a request of kind {request.kind!r} is not a job the API starts")

        return refuse

    def _import_work(self, request: ImageRequested, asked: ImportRequest) -> Work:
        name = asked.name

        async def work(job: ImageJob, feed: ProgressFeed, staging: Staging) -> Ending:
            creds = None
            if request.creds:
                creds = await asyncio.to_thread(self._layout.read_request_creds, job.id)
                if creds is None:
                    raise NotFound(
                        "the registry credentials of this import are kept by the builder "
                        "that accepted it; import again",
                        field="creds",
                    )
            source = check_source(asked.source)
            fetch = fetch_options(asked.platform, asked.insecure, creds)
            base = await self._bucket.get_or_none(name)
            built = await pipeline.import_and_build(
                source,
                staging,
                self._layout,
                self._store,
                feed,
                name=name,
                fetch=fetch,
                kernelversion=asked.kernelversion,
                compression=asked.compression,
            )
            meta = image_record(
                name,
                asked.source,
                built,
                base,
                kernelversion=asked.kernelversion,
                compression=asked.compression,
                insecure=asked.insecure,
            )
            return await self._runner.commit(
                job, base, meta, built, staging, creds=creds, set_creds=True
            )

        return work

    def _build_work(self, name: str) -> Work:
        async def work(job: ImageJob, feed: ProgressFeed, staging: Staging) -> Ending:
            # Read now: the request may have waited, or been handed over after a restart.
            meta = await self._bucket.get_or_none(name)
            if meta is None:
                raise NotFound(f"no image named {name!r}", field="name")
            built = await pipeline.rebuild(
                self._layout.rootfs(name),
                staging,
                self._layout,
                self._store,
                feed,
                name=name,
                kernelversion=meta.kernelversion,
                compression=meta.compression,
            )
            new = again_record(name, built, meta)
            return await self._runner.commit(job, meta, new, built, staging)

        return work
