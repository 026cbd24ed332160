"""Following a job to its end: its events over NATS (subscribed before the request that
starts it, so none is missed), with the job endpoint polled as a fallback, and a progress bar.
A builder that restarts mid-job runs the job again under the same id once it is back: the
follower waits for that rather than giving up at the first refused connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, Final

import msgspec

from libs.common import subjects
from libs.common.apiclient.builder import BuilderClient
from libs.common.apiclient.client import Unreachable
from libs.common.errors import NotFound, WolfpackError
from libs.common.models.image import (
    ImageBuilt,
    ImageDetails,
    ImageFailed,
    ImageJob,
    ImageProgress,
    ImageUnchanged,
)
from libs.wolfctl.image.progress import ProgressDisplay
from libs.wolfctl.natsconn import connect_once

# How long without an event before asking the job endpoint how the job is.
POLL_AFTER: Final = 2.0
NATS_CONNECT_TIMEOUT: Final = 2.0
# How long the builder may be unreachable, or not know the job, before the job counts as
# gone: a restart plus the time NATS takes to hand the request over again.
RESTART_GRACE: Final = 60.0
_MODELS: Final[dict[str, type[msgspec.Struct]]] = {
    "progress": ImageProgress,
    "built": ImageBuilt,
    "failed": ImageFailed,
    "unchanged": ImageUnchanged,
}


class ImageEvents:
    """The events of one image, from a live NATS subscription."""

    def __init__(self, nc: Any, sub: Any) -> None:
        self._nc = nc
        self._sub = sub

    @classmethod
    async def open(cls, url: str, name: str) -> ImageEvents | None:
        """Subscribe to every event of image `name`; None if NATS cannot be reached (the job
        endpoint is polled instead)."""
        try:
            nc = await connect_once(url, connect_timeout=NATS_CONNECT_TIMEOUT)
        except Exception:
            return None
        sub = await nc.subscribe(subjects.events_of("image", name))
        await nc.flush()
        return cls(nc, sub)

    async def next(self, wait: float) -> msgspec.Struct | None:
        """The next event, or None after `wait` seconds without one."""
        import nats.errors

        try:
            msg = await self._sub.next_msg(timeout=wait)
        except nats.errors.TimeoutError:
            return None
        except nats.errors.Error:
            await asyncio.sleep(wait)  # connection gone: the poll takes over
            return None
        model = _MODELS.get(subjects.parse(msg.subject).verb)
        if model is None:
            return None
        try:
            return msgspec.json.decode(msg.data, type=model)
        except msgspec.DecodeError:
            return None

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._nc.close()


async def follow(
    api: BuilderClient, events: ImageEvents | None, job: ImageJob, *, show: bool = True
) -> ImageDetails:
    """Wait for `job` to end, showing its progress; the image as built, or the failure
    raised as a WolfpackError carrying the builder's reason."""
    display = ProgressDisplay(job.name, enabled=show)
    try:
        with display:
            await _wait(api, events, job, display)
    finally:
        if events is not None:
            await events.close()
    return await api.get(f"/images/{job.name}", ImageDetails)


async def _wait(
    api: BuilderClient, events: ImageEvents | None, job: ImageJob, display: ProgressDisplay
) -> None:
    quiet_since = time.monotonic()
    lost_since: float | None = None
    while True:
        if events is None:
            await asyncio.sleep(0.5)
            event = None
        else:
            event = await events.next(0.5)
        if event is not None:
            if getattr(event, "job", None) != job.id:
                continue
            quiet_since = time.monotonic()
            if isinstance(event, ImageProgress):
                display.update(event)
            elif isinstance(event, ImageFailed):
                raise WolfpackError(f"image {job.name}: {event.reason}")
            elif isinstance(event, ImageBuilt | ImageUnchanged):
                return
            continue
        if time.monotonic() - quiet_since < POLL_AFTER and events is not None:
            continue
        # No event for a while (or no NATS): ask the builder how the job is.
        quiet_since = time.monotonic()
        try:
            current = await api.get(f"/images/{job.name}/job", ImageJob)
        except (NotFound, Unreachable):
            current = None
        if current is None or current.id != job.id:
            lost_since = lost_since or time.monotonic()
            if time.monotonic() - lost_since < RESTART_GRACE:
                continue
            raise WolfpackError(
                f"job {job.id} of image {job.name} is gone (did the builder restart?); "
                f"`wolfctl image show {job.name}` tells what is served"
            )
        lost_since = None
        if current.progress is not None:
            display.update(current.progress)
        if current.state == "failed":
            raise WolfpackError(f"image {job.name}: {current.reason}")
        if current.state not in ("queued", "running"):
            return
