"""The builder's domain: images in KV `images` and the jobs that import, build, rebuild on
a push and delete them. No HTTP and no NATS here: KV, the publisher and the ledger of
accepted requests come in as narrow interfaces (protocols.py); how a job runs and ends is
runner.py, how an accepted import or build survives a crash is requested.py."""

from __future__ import annotations

import asyncio
import logging
import os

from libs.common import subjects
from libs.common.bus.announce import Announcement
from libs.common.bus.publisher import Publisher
from libs.common.errors import Invalid, NotFound
from libs.common.models.image import (
    ImageDeleted,
    ImageDetails,
    ImageJob,
    ImageMeta,
    ImagePushed,
    ImageRequested,
    ImageUnchanged,
    ImportRequest,
    validate_image_name,
)
from libs.common.store.cas import ContentStore
from services.builder import pipeline
from services.builder.jobs import ProgressFeed, snapshot
from services.builder.layout import Layout, remove_tree
from services.builder.options import check_source, fetch_options
from services.builder.parts import BuilderParts
from services.builder.pipeline import Staging
from services.builder.protocols import ImageBucket, RequestLedger
from services.builder.pushes import follows, registry_source
from services.builder.records import again_record
from services.builder.requested import RequestedJobs
from services.builder.runner import Ending, Work
from services.builder.sources import inspect_digest

log = logging.getLogger("wolfpack.builder")


class Images:
    def __init__(
        self,
        bucket: ImageBucket,
        publisher: Publisher,
        store: ContentStore,
        layout: Layout,
        ledger: RequestLedger,
    ) -> None:
        self._parts = BuilderParts.build(bucket, publisher, store, layout)
        self.layout = layout
        self.jobs = self._parts.jobs
        self.requested = RequestedJobs(self._parts, ledger)

    async def start(self) -> None:
        await asyncio.to_thread(self.layout.prepare)

    async def stop(self) -> None:
        await self.jobs.stop()

    # -- reads ---------------------------------------------------------------------------

    async def list(self) -> list[ImageMeta]:
        items = await self._parts.bucket.items()
        return [items[name] for name in sorted(items)]

    async def get(self, name: str) -> ImageMeta:
        validate_image_name(name)
        meta = await self._parts.bucket.get_or_none(name)
        if meta is None:
            raise NotFound(f"no image named {name!r}", field="name")
        return meta

    async def show(self, name: str) -> ImageDetails:
        meta = await self.get(name)
        fields = {field: getattr(meta, field) for field in meta.__struct_fields__}
        job = self.jobs.running(name)
        if job is None:
            try:
                job = self.jobs.latest(name)
            except NotFound:
                job = None
        return ImageDetails(
            **fields,
            rootfs=str(self.layout.rootfs(name)),
            job=snapshot(job) if job is not None else None,
        )

    def job(self, name: str) -> ImageJob:
        validate_image_name(name)
        return snapshot(self.jobs.latest(name))

    # -- jobs started by the API ---------------------------------------------------------

    async def import_image(self, request: ImportRequest) -> ImageJob:
        """Check the request, record it durably, and return its job, queued: the import and
        build run when the stream hands the request over (requested.py)."""
        name = validate_image_name(request.name)
        check_source(request.source)
        fetch_options(request.platform, request.insecure, request.creds)
        if request.kernelversion is not None and not request.kernelversion.strip():
            raise Invalid("kernelversion is empty", field="kernelversion")
        job = self.jobs.accept(name, "import", request.source)
        return await self.requested.record(job, request)

    async def build(self, name: str) -> ImageJob:
        """Record a rebuild of the image from its rootfs on disk; returns its job, queued."""
        meta = await self.get(name)
        job = self.jobs.accept(name, "build", meta.source)
        return await self.requested.record(job, None)

    async def on_requested(self, request: ImageRequested) -> None:
        await self.requested.handle(request)

    async def delete(self, name: str) -> None:
        """Forget the image and remove its folder; its blobs stay in the store for gc."""
        meta = await self.get(name)
        job = self.jobs.claim(name, "delete", meta.source)
        # The event's revision is the delete's own, filled in by the relay.
        event = Announcement(subjects.image(name, "deleted"), ImageDeleted(name=name, revision=0))
        try:
            await self._parts.bucket.delete(name, meta.revision, event)
            await asyncio.to_thread(self._remove_folder, name, job.id)
        finally:
            self.jobs.release(job)
            self.jobs.forget(name)

    def _remove_folder(self, name: str, job_id: str) -> None:
        folder = self.layout.image_dir(name)
        if folder.exists():
            # Out of sight first (one rename), then removed.
            doomed = self.layout.staging / f"deleted-{job_id}"
            os.rename(folder, doomed)
            remove_tree(doomed)

    # -- jobs started by a push ----------------------------------------------------------

    async def on_pushed(self, event: ImagePushed) -> None:
        """A push to the repository an image follows: rebuild if the digest moved."""
        meta = await self._parts.bucket.get_or_none(event.name)
        if meta is None or not follows(meta.source, event.repository, event.tag, None):
            log.info("push of %s:%s concerns no image %s now", event.repository, event.tag,
                     event.name)  # fmt: skip
            return
        job = await self.jobs.claim_when_idle(event.name, "push", meta.source)
        await self._parts.runner.run_and_wait(job, self._push_work(event))

    def _push_work(self, event: ImagePushed) -> Work:
        name = event.name

        async def work(job: ImageJob, feed: ProgressFeed, staging: Staging) -> Ending:
            # Read again: the image may have been re-imported while this push waited.
            meta = await self._parts.bucket.get_or_none(name)
            followed = registry_source(meta.source) if meta is not None else None
            if meta is None or followed is None:
                raise NotFound(f"image {name!r} no longer follows {event.repository}")
            creds = await asyncio.to_thread(self.layout.read_creds, name)
            fetch = fetch_options(meta.platform, meta.insecure, creds)
            feed.report("inspect", message=f"digest of {followed.text()}")
            digest = await inspect_digest(followed, fetch)
            if digest is not None and digest == meta.source_digest:
                log.info("push to %s: digest %s is already built; nothing to do",
                         followed.text(), digest)  # fmt: skip
                return Ending("unchanged", "unchanged", ImageUnchanged(
                    name=name, job=job.id, digest=digest))  # fmt: skip
            pinned = followed.pinned(digest) if digest else followed
            built = await pipeline.import_and_build(
                pinned,
                staging,
                self.layout,
                self._parts.store,
                feed,
                name=name,
                fetch=fetch,
                kernelversion=meta.kernelversion,
                compression=meta.compression,
            )
            new = again_record(name, built, meta)
            return await self._parts.runner.commit(job, meta, new, built, staging)

        return work
