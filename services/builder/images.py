"""The builder's domain: images in KV `images` and the jobs that import, build, rebuild on
a push and delete them. No HTTP and no NATS here: KV and the publisher come in as narrow
interfaces (ports.py); how a job runs and ends is runner.py."""

from __future__ import annotations

import asyncio
import logging
import os
import platform

from libs.common.cas import ContentStore
from libs.common.errors import Invalid, NotFound
from libs.common.models.image import (
    ImageDeleted,
    ImageDetails,
    ImageJob,
    ImageMeta,
    ImagePushed,
    ImageUnchanged,
    ImportRequest,
    image_subject,
    validate_image_name,
)
from services.builder import pipeline
from services.builder.jobs import JobTable, ProgressFeed, snapshot
from services.builder.layout import Layout, remove_tree
from services.builder.pipeline import Built, Staging
from services.builder.ports import ImageBucket, Publisher
from services.builder.pushes import follows, registry_source
from services.builder.records import image_record
from services.builder.runner import Ending, JobRunner, Work
from services.builder.sources import FetchOptions, Source, inspect_digest, parse_source
from services.builder.sources.platform import parse_platform

log = logging.getLogger("wolfpack.builder")

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le"}


def host_platform() -> str:
    machine = platform.machine()
    return f"linux/{_ARCH.get(machine, machine)}"


class Images:
    def __init__(
        self, bucket: ImageBucket, publisher: Publisher, store: ContentStore, layout: Layout
    ) -> None:
        self._bucket = bucket
        self._publisher = publisher
        self._store = store
        self.layout = layout
        self.jobs = JobTable()
        self._runner = JobRunner(bucket, publisher, layout, self.jobs)

    async def start(self) -> None:
        await asyncio.to_thread(self.layout.prepare)

    async def stop(self) -> None:
        await self.jobs.stop()

    # -- reads ---------------------------------------------------------------------------

    async def list(self) -> list[ImageMeta]:
        items = await self._bucket.items()
        return [items[name] for name in sorted(items)]

    async def get(self, name: str) -> ImageMeta:
        validate_image_name(name)
        meta = await self._bucket.get_or_none(name)
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
        """Check the request, then import and build in the background; returns the job."""
        name = validate_image_name(request.name)
        source = _check_source(request.source)
        fetch = _fetch_options(request.platform, request.insecure, request.creds)
        if request.kernelversion is not None and not request.kernelversion.strip():
            raise Invalid("kernelversion is empty", field="kernelversion")
        job = self.jobs.claim(name, "import", request.source)

        async def work(job: ImageJob, feed: ProgressFeed, staging: Staging) -> Ending:
            base = await self._bucket.get_or_none(name)
            built = await pipeline.import_and_build(
                source,
                staging,
                self.layout,
                self._store,
                feed,
                name=name,
                fetch=fetch,
                kernelversion=request.kernelversion,
                compression=request.compression,
            )
            meta = image_record(
                name,
                request.source,
                built,
                base,
                kernelversion=request.kernelversion,
                compression=request.compression,
                insecure=request.insecure,
            )
            return await self._runner.commit(
                job, base, meta, built, staging, creds=request.creds, set_creds=True
            )

        self.jobs.spawn(self._runner.run(job, work), job)
        return snapshot(job)

    async def build(self, name: str) -> ImageJob:
        """Build the image again from its rootfs on disk, in the background."""
        meta = await self.get(name)
        job = self.jobs.claim(name, "build", meta.source)

        async def work(job: ImageJob, feed: ProgressFeed, staging: Staging) -> Ending:
            built = await pipeline.rebuild(
                self.layout.rootfs(name),
                staging,
                self.layout,
                self._store,
                feed,
                name=name,
                kernelversion=meta.kernelversion,
                compression=meta.compression,
            )
            new = _again(name, built, meta)
            return await self._runner.commit(job, meta, new, built, staging)

        self.jobs.spawn(self._runner.run(job, work), job)
        return snapshot(job)

    async def delete(self, name: str) -> None:
        """Forget the image and remove its folder; its blobs stay in the store for gc."""
        meta = await self.get(name)
        job = self.jobs.claim(name, "delete", meta.source)
        try:
            await self._bucket.delete(name, meta.revision)
            await asyncio.to_thread(self._remove_folder, name, job.id)
        finally:
            self.jobs.release(job)
            self.jobs.forget(name)
        await self._publisher.publish(
            image_subject(name, "deleted"), ImageDeleted(name=name, revision=meta.revision)
        )

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
        meta = await self._bucket.get_or_none(event.name)
        if meta is None or not follows(meta.source, event.repository, event.tag, None):
            log.info("push of %s:%s concerns no image %s now", event.repository, event.tag,
                     event.name)  # fmt: skip
            return
        job = await self.jobs.claim_when_idle(event.name, "push", meta.source)
        task = self.jobs.spawn(self._runner.run(job, self._push_work(event)), job)
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and not (current and current.cancelling()):
                # Not acknowledged: the durable consumer hands the push over again.
                raise RuntimeError(
                    f"the builder stopped while rebuilding {event.name}; the push will be "
                    "handled again"
                ) from None
            raise

    def _push_work(self, event: ImagePushed) -> Work:
        name = event.name

        async def work(job: ImageJob, feed: ProgressFeed, staging: Staging) -> Ending:
            # Read again: the image may have been re-imported while this push waited.
            meta = await self._bucket.get_or_none(name)
            followed = registry_source(meta.source) if meta is not None else None
            if meta is None or followed is None:
                raise NotFound(f"image {name!r} no longer follows {event.repository}")
            creds = await asyncio.to_thread(self.layout.read_creds, name)
            fetch = _fetch_options(meta.platform, meta.insecure, creds)
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
                self._store,
                feed,
                name=name,
                fetch=fetch,
                kernelversion=meta.kernelversion,
                compression=meta.compression,
            )
            new = _again(name, built, meta)
            return await self._runner.commit(job, meta, new, built, staging)

        return work


def _again(name: str, built: Built, meta: ImageMeta) -> ImageMeta:
    """The record of a rebuild: what the image was imported with stays."""
    return image_record(
        name,
        meta.source,
        built,
        meta,
        kernelversion=meta.kernelversion,
        compression=meta.compression,
        insecure=meta.insecure,
    )


def _check_source(text: str) -> Source:
    source = parse_source(text)
    path = getattr(source, "path", None)
    if path is not None and not os.path.isabs(path):
        raise Invalid(
            f"{text!r}: a local source must be an absolute path on the builder's machine",
            field="source",
        )
    return source


def _fetch_options(platform_text: str | None, insecure: bool, creds: str | None) -> FetchOptions:
    if platform_text is not None:
        parse_platform(platform_text)
    if creds is not None and ":" not in creds:
        raise Invalid("credentials must be user:password", field="creds")
    return FetchOptions(platform=platform_text or host_platform(), insecure=insecure, creds=creds)
