"""What the builder reacts to on NATS: subject → handler, nothing else."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Final, Protocol

import msgspec

from libs.common import subjects
from libs.common.bus.connection import Bus
from libs.common.bus.subscription import Subscription
from libs.common.models.image import ImageJob, ImagePushed, ImageRequested, JobKind, JobState
from services.builder.images import Images

PUSHED: Final = subjects.every("image", "pushed")
# Durable: a push published while the builder was down is handled when it is back.
PUSHED_DURABLE: Final = "builder-pushed"
# Durable too: an import or build the API accepted runs even if the builder dies meanwhile.
# Builders sharing this consumer share the work (each request runs on one of them).
REQUESTED: Final = subjects.every("image", "requested")
REQUESTED_DURABLE: Final = "builder-requested"
# Jobs of different images at once on one builder (one per image: jobs.py); more requests
# wait on the stream, queued.
JOB_SLOTS: Final = 4
# A builder killed mid-job has its request handed to a builder (itself, restarted) this long
# after its last keep-alive (sent every third of it); 30 s, the bus default, is a long wait.
REQUEST_ACK_WAIT: Final = 10.0
# Any builder's job endings: a request accepted here may have run on another builder.
ENDED: Final = (subjects.every("image", "built"), subjects.every("image", "failed"))


class Stoppable(Protocol):
    async def stop(self) -> None: ...


class JobEnded(msgspec.Struct):
    """What `built` and `failed` both say about the job that ended."""

    name: str
    job: str
    kind: JobKind
    reason: str | None = None
    at: float = 0.0


class EndWatch:
    """Settles the queued jobs of this builder that another builder ran (live, no replay)."""

    def __init__(self, images: Images, subs: list[Subscription[JobEnded]]) -> None:
        self._subs = subs
        self._tasks = [asyncio.create_task(self._follow(images, sub)) for sub in subs]

    async def _follow(self, images: Images, sub: Subscription[JobEnded]) -> None:
        async for subject, ended in sub:
            state: JobState = "built" if subjects.parse(subject).verb == "built" else "failed"
            job = ImageJob(id=ended.job, name=ended.name, kind=ended.kind, source="",
                           state=state, reason=ended.reason, finished_at=ended.at)  # fmt: skip
            images.jobs.settle(job)

    async def stop(self) -> None:
        for sub in self._subs:
            await sub.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await task


async def subscribe(bus: Bus, images: Images) -> list[Stoppable]:
    async def on_pushed(subject: str, event: ImagePushed) -> None:
        await images.on_pushed(event)

    async def on_requested(subject: str, request: ImageRequested) -> None:
        await images.on_requested(request)

    watch = EndWatch(images, [await bus.subscribe(subject, JobEnded) for subject in ENDED])
    return [
        watch,
        await bus.consume(PUSHED, PUSHED_DURABLE, ImagePushed, on_pushed, batch=1),
        await bus.consume(
            REQUESTED,
            REQUESTED_DURABLE,
            ImageRequested,
            on_requested,
            batch=JOB_SLOTS,
            ack_wait=REQUEST_ACK_WAIT,
            concurrency=JOB_SLOTS,
        ),
    ]
