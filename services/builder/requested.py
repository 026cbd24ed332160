"""The jobs the API accepted: recorded on the stream before the 202, then run as the durable
consumer hands their requests over — again after a crash, under the same job id, until one
run ends: `built`, or `failed` for a fault of the request itself (a bad source, a corrupt
archive, no kernel) or a full store (someone must free space). A run that NATS being
unavailable cut short (a KV write that timed out, the broker restarting) is no end: the job
goes back to `queued`, its request is not acknowledged and runs again with the consumer's
backoff once NATS is back.

Recording is the one step whose failure the client hears of (503), and only when NATS
certainly did not store the request; when NATS stored it or not, nobody knows (the answer
timed out), the job is kept queued, with its credentials, and recorded again under the same
message id (stored once) until NATS answers: the client gets its 202.

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

from libs.common import subjects
from libs.common.errors import Conflict, Invalid, NotFound
from libs.common.models.image import (
    ImageFailed,
    ImageJob,
    ImageRequested,
    ImportRequest,
)
from services.builder import pipeline
from services.builder.jobs import ProgressFeed, finish, snapshot
from services.builder.options import check_source, fetch_options
from services.builder.parts import BuilderParts
from services.builder.pipeline import Staging
from services.builder.protocols import RequestLedger
from services.builder.records import again_record, image_record
from services.builder.runner import Ending, Work

log = logging.getLogger("wolfpack.builder")

# Seconds between attempts to record a request NATS did not confirm (doubling up to the last).
CONFIRM_RETRY = 1.0
CONFIRM_RETRY_MAX = 30.0


class Unconfirmed(Exception):
    """NATS did not answer a publish in time: the request may be stored, or not."""


class RequestedJobs:
    def __init__(self, parts: BuilderParts, ledger: RequestLedger) -> None:
        self._parts = parts
        self._ledger = ledger

    async def record(self, job: ImageJob, asked: ImportRequest | None) -> ImageJob:
        """Record queued `job` on the stream (its credentials on this builder's disk) and
        return what the 202 says. If NATS certainly did not store it the job is dropped and
        the error raised is the whole answer; if that is unknown, the job stays queued and is
        recorded again until NATS answers (its `reason` says so meanwhile)."""
        creds = asked.creds if asked is not None else None
        request = ImageRequested(
            name=job.name,
            job=job.id,
            kind=job.kind,
            source=job.source,
            request=msgspec.structs.replace(asked, creds=None) if asked is not None else None,
            creds=creds is not None,
        )
        accepted = snapshot(job)  # what the answer says, however fast the job then runs
        try:
            if creds is not None:
                await asyncio.to_thread(self._parts.layout.keep_request_creds, job.id, creds)
            await self._ledger.record(request)
        except Unconfirmed as unsure:
            # The request may be on the stream and run: keep the job and its credentials.
            log.warning("job %s of image %s: NATS did not confirm its request (%s); "
                        "recording it again", job.id, job.name, unsure)  # fmt: skip
            accepted.reason = (
                f"NATS did not confirm it recorded the request ({unsure}); the builder "
                "records it again until NATS answers, then the job runs"
            )
            if job.state == "queued":  # not handed over already
                job.reason = accepted.reason
                self._parts.jobs.spawn(self._confirm(job, request, accepted.reason), job)
        except BaseException:
            self._parts.jobs.drop(job)
            await asyncio.to_thread(self._parts.layout.forget_request_creds, job.id)
            raise
        return accepted

    async def _confirm(self, job: ImageJob, request: ImageRequested, waiting: str) -> None:
        """Record `request` again (same message id: stored once) until NATS answers, or the
        job no longer waits for it (its first copy was stored and handed over: taking the
        job clears its `waiting` reason)."""
        delay = CONFIRM_RETRY
        while self._parts.jobs.running(job.name) is job and job.reason == waiting:
            try:
                await self._ledger.record(request)
            except Exception as err:
                log.warning("job %s of image %s: recording its request: %s; again in %gs",
                            job.id, job.name, err or type(err).__name__, delay)  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, CONFIRM_RETRY_MAX)
                continue
            log.info("job %s of image %s: NATS confirmed its request", job.id, job.name)
            if job.reason == waiting:
                job.reason = None
            return

    async def handle(self, request: ImageRequested) -> None:
        """Run the job of `request` to its end (then the request may be acknowledged); raise
        if the builder stops or NATS fails meanwhile, so the request is handed over again."""
        if self._parts.jobs.ended(request.name, request.job):
            return  # delivered again after it ran here
        try:
            job = await self._take(request)
        except Conflict as replaced:
            await self._give_up(request, replaced.message)
            return
        if job is None:
            await asyncio.to_thread(self._parts.layout.forget_request_creds, request.job)
            return
        await self._parts.runner.run_and_wait(job, self._work(request), resumable=True)
        await asyncio.to_thread(self._parts.layout.forget_request_creds, request.job)

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
            self._parts.jobs.settle(ended)
            return None
        return await self._parts.jobs.take(request.name, request.kind, request.source, request.job)

    async def _give_up(self, request: ImageRequested, reason: str) -> None:
        log.info("job %s of image %s: %s", request.job, request.name, reason)
        job = ImageJob(id=request.job, name=request.name, kind=request.kind, source=request.source)
        finish(job, "failed", reason)
        self._parts.jobs.settle(job)
        failed = ImageFailed(
            name=request.name, job=request.job, kind=request.kind, phase=None, reason=reason
        )
        await self._parts.publisher.publish(subjects.image(request.name, "failed"), failed)
        await asyncio.to_thread(self._parts.layout.forget_request_creds, request.job)

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
                creds = await asyncio.to_thread(self._parts.layout.read_request_creds, job.id)
                if creds is None:
                    raise NotFound(
                        "the registry credentials of this import are kept by the builder "
                        "that accepted it; import again",
                        field="creds",
                    )
            source = check_source(asked.source)
            fetch = fetch_options(asked.platform, asked.insecure, creds)
            base = await self._parts.bucket.get_or_none(name)
            built = await pipeline.import_and_build(
                source,
                staging,
                self._parts.layout,
                self._parts.store,
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
            return await self._parts.runner.commit(
                job, base, meta, built, staging, creds=creds, set_creds=True
            )

        return work

    def _build_work(self, name: str) -> Work:
        async def work(job: ImageJob, feed: ProgressFeed, staging: Staging) -> Ending:
            # Read now: the request may have waited, or been handed over after a restart.
            meta = await self._parts.bucket.get_or_none(name)
            if meta is None:
                raise NotFound(f"no image named {name!r}", field="name")
            built = await pipeline.rebuild(
                self._parts.layout.rootfs(name),
                staging,
                self._parts.layout,
                self._parts.store,
                feed,
                name=name,
                kernelversion=meta.kernelversion,
                compression=meta.compression,
            )
            new = again_record(name, built, meta)
            return await self._parts.runner.commit(job, meta, new, built, staging)

        return work
