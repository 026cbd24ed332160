"""Jobs: at most one per image at a time on this builder, queued (accepted, recorded on the
stream, not started) or running, and the last one that ended (for `GET …/job`); and the
progress each one publishes at a bounded rate. The table lives in memory: what survives a
crash is the request on the stream, run again under the same job id (requested.py)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import msgspec

from libs.common.errors import Conflict, NotFound, WolfpackError
from libs.common.models.events import now
from libs.common.models.image import ImageJob, ImageProgress, JobKind, JobState, Phase
from services.builder.sources import ImportProgress
from services.builder.vnfs import BuildProgress

log = logging.getLogger("wolfpack.builder")

PublishProgress = Callable[[ImageProgress], Awaitable[object]]


def new_job_id() -> str:
    return secrets.token_hex(6)


class JobTable:
    """The queued or running job of each image, and the last one that ended."""

    def __init__(self) -> None:
        self._active: dict[str, ImageJob] = {}
        self._idle: dict[str, asyncio.Event] = {}
        self._last: dict[str, ImageJob] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False

    def running(self, name: str) -> ImageJob | None:
        """The image's job under way (queued or running), if any."""
        return self._active.get(name)

    def latest(self, name: str) -> ImageJob:
        job = self._active.get(name) or self._last.get(name)
        if job is None:
            raise NotFound(f"no job for image {name!r} since the builder started", field="name")
        return job

    def ended(self, name: str, job_id: str) -> bool:
        """Whether job `job_id` of `name` ran to its end here (a duplicate delivery)."""
        last = self._last.get(name)
        return last is not None and last.id == job_id

    def claim(
        self, name: str, kind: JobKind, source: str, *, job_id: str | None = None
    ) -> ImageJob:
        """A new running job for `name`; Conflict if one is under way."""
        return self._add(name, kind, source, job_id or new_job_id(), "running")

    def accept(self, name: str, kind: JobKind, source: str) -> ImageJob:
        """A new queued job for `name` (the API's); Conflict if one is under way."""
        return self._add(name, kind, source, new_job_id(), "queued")

    def _add(self, name: str, kind: JobKind, source: str, job_id: str, state: JobState) -> ImageJob:
        if self._stopping:
            raise WolfpackError("the builder is stopping; try again when it is back")
        busy = self._active.get(name)
        if busy is not None:
            raise Conflict(
                f"image {name!r} is busy with {busy.kind} job {busy.id} ({busy.state}); "
                "wait for it to end (`wolfctl image show` tells)",
                field="name",
            )
        job = ImageJob(id=job_id, name=name, kind=kind, source=source, state=state)
        self._active[name] = job
        self._idle[name] = asyncio.Event()
        return job

    async def claim_when_idle(self, name: str, kind: JobKind, source: str) -> ImageJob:
        """Like claim, waiting for the job under way of `name` to end first."""
        await self._wait_idle(name)
        return self.claim(name, kind, source)

    async def take(self, name: str, kind: JobKind, source: str, job_id: str) -> ImageJob | None:
        """Job `job_id` (handed over by the stream) made running: the one queued here, or a
        new one under that id once the image is idle. None if it needs no run: it ended here
        already. Conflict if a later request for the image is queued here (that one wins)."""
        while True:
            if self._stopping:
                raise WolfpackError("the builder is stopping; the request is handed over again")
            if self.ended(name, job_id):
                return None
            active = self._active.get(name)
            if active is not None and active.state == "queued":
                if active.id != job_id:
                    raise Conflict(
                        f"a later request for image {name!r} (job {active.id}) replaces this one"
                    )
                active.state = "running"
                active.started_at = now()
                active.reason = None
                return active
            if active is None:
                return self.claim(name, kind, source, job_id=job_id)
            await self._wait_idle(name)

    async def _wait_idle(self, name: str) -> None:
        while not self._stopping and name in self._active:
            await self._idle[name].wait()

    def release(self, job: ImageJob) -> None:
        if self._active.get(job.name) is job:
            del self._active[job.name]
            self._last[job.name] = job
            self._idle.pop(job.name).set()

    def requeue(self, job: ImageJob, reason: str) -> None:
        """A running job cut short by a NATS outage: queued again, saying why, until its
        request is handed over again (it then starts afresh under the same id)."""
        if self._active.get(job.name) is job:
            job.state = "queued"
            job.reason = reason
            job.phase = None
            job.progress = None

    def drop(self, job: ImageJob) -> None:
        """A job given up here without an end: never recorded (the stream refused it), or
        cut short by a stop (its request is handed over again)."""
        if self._active.get(job.name) is job:
            del self._active[job.name]
            self._idle.pop(job.name).set()

    def settle(self, ended: ImageJob) -> None:
        """A job that ended elsewhere (another builder ran a request this one accepted, or
        it ended before a restart): end its queued entry here, or keep it as the last job
        of an image that has none."""
        active = self._active.get(ended.name)
        if active is not None and active.id == ended.id and active.state == "queued":
            finish(active, ended.state, ended.reason)
            self.release(active)
        elif active is None and ended.name not in self._last:
            self._last[ended.name] = ended

    def forget(self, name: str) -> None:
        """The image is gone: so is the record of its last job."""
        self._last.pop(name, None)

    def spawn(self, coro: Coroutine[Any, Any, None], job: ImageJob) -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name=f"{job.kind} {job.name} {job.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def stop(self) -> None:
        """Cancel the jobs under way; each cleans its staging folder before it ends."""
        self._stopping = True
        for idle in self._idle.values():
            idle.set()  # waiters see the stop at once
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks))


def finish(job: ImageJob, state: Any, reason: str | None = None) -> None:
    job.state = state
    job.reason = reason
    job.finished_at = now()


class ProgressFeed:
    """Turns the libraries' progress reports into `progress` events of one job.

    Reports come at most every 0.25 s per phase (both libraries throttle) plus one at each
    phase change; a report not yet published is replaced by a newer one of the same phase,
    so a slow broker delays progress but never queues it up, and every phase is seen.
    """

    def __init__(self, job: ImageJob, publish: PublishProgress) -> None:
        self._job = job
        self._publish = publish
        self._pending: collections.deque[ImageProgress] = collections.deque()
        self._wake = asyncio.Event()
        self._closed = False
        self._task = asyncio.create_task(self._run(), name=f"progress {job.name} {job.id}")

    def report(
        self,
        phase: Phase,
        *,
        bytes_done: int = 0,
        bytes_total: int | None = None,
        files_done: int = 0,
        files_total: int | None = None,
        message: str = "",
    ) -> None:
        progress = ImageProgress(
            name=self._job.name,
            job=self._job.id,
            phase=phase,
            bytes_done=bytes_done,
            bytes_total=bytes_total,
            files_done=files_done,
            files_total=files_total,
            message=message,
        )
        self._job.phase = phase
        self._job.progress = progress
        if self._pending and self._pending[-1].phase == phase:
            self._pending[-1] = progress
        else:
            self._pending.append(progress)
        self._wake.set()

    def on_import(self, progress: ImportProgress) -> None:
        self.report(
            progress.phase,
            bytes_done=progress.bytes_done,
            bytes_total=progress.bytes_total,
            files_done=progress.files_done,
        )

    def on_build(self, progress: BuildProgress) -> None:
        message = ""
        if progress.phase == "compress" and progress.chunks_reused:
            message = f"{progress.chunks_reused} chunks reused, {progress.chunks_built} built"
        self.report(
            progress.phase,
            bytes_done=progress.bytes_done,
            bytes_total=progress.bytes_total or None,
            files_done=progress.files_done,
            files_total=progress.files_total or None,
            message=message,
        )

    async def close(self) -> None:
        """Publish what is pending, then stop (the job's last event follows the progress)."""
        self._closed = True
        self._wake.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(self._task)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                progress = self._pending.popleft()
                try:
                    await self._publish(progress)
                except Exception as err:  # progress is best effort; the job goes on
                    log.warning("progress of %s not published: %s", self._job.name, err)
            if self._closed:
                return


def snapshot(job: ImageJob) -> ImageJob:
    """A copy to hand out: the job's own struct keeps changing while it runs."""
    return msgspec.structs.replace(job)
