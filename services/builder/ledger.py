"""The WOLFPACK stream as the ledger of the jobs the API accepted: a request is recorded as
`wolfpack.image.<name>.requested` (its job id as the message id, so a retried publish is
stored once), and the stream's last message of a subject answers which request of an image
is the latest and whether a job already ended (`built` or `failed` with its id).

A publish NATS did not answer in time may be stored or not: that is Unconfirmed, and the
caller records it again (requested.py). Any other error (no connection, no responders, the
stream refusing it) means it was not stored."""

from __future__ import annotations

from typing import TypeVar

import msgspec
import nats.errors
import nats.js.errors

from libs.common import names, subjects
from libs.common.bus.connection import Bus
from libs.common.models.image import (
    ImageBuilt,
    ImageFailed,
    ImageJob,
    ImageRequested,
    JobState,
)
from services.builder.requested import Unconfirmed

T = TypeVar("T", bound=msgspec.Struct)


class StreamLedger:
    def __init__(self, bus: Bus) -> None:
        self._bus = bus

    async def record(self, request: ImageRequested) -> None:
        subject = subjects.image(request.name, "requested")
        try:
            await self._bus.publish(subject, request, msg_id=request.job)
        except nats.errors.TimeoutError as err:
            # The stream's answer may be what was lost: the same id makes a second copy a no-op.
            raise Unconfirmed(str(err) or "no answer in time") from err

    async def last_request(self, name: str) -> ImageRequested | None:
        return await self._last(name, "requested", ImageRequested)

    async def ending(self, request: ImageRequested) -> ImageJob | None:
        """How job `request.job` ended, if the stream says it did (the image's last `built` or
        `failed` is of that job); None if it did not, or a later job's end hides it."""
        built = await self._last(request.name, "built", ImageBuilt)
        if built is not None and built.job == request.job:
            return _ended(request, "built", None, built.at)
        failed = await self._last(request.name, "failed", ImageFailed)
        if failed is not None and failed.job == request.job:
            return _ended(request, "failed", failed.reason, failed.at)
        return None

    async def _last(self, name: str, verb: subjects.Verb, model: type[T]) -> T | None:
        try:
            found = await self._bus.js.get_last_msg(names.STREAM, subjects.image(name, verb))
        except nats.js.errors.NotFoundError:
            return None
        try:
            return msgspec.json.decode(found.data or b"", type=model)
        except msgspec.DecodeError:
            return None  # not ours to judge: as if there were none


def _ended(request: ImageRequested, state: JobState, reason: str | None, at: float) -> ImageJob:
    return ImageJob(
        id=request.job,
        name=request.name,
        kind=request.kind,
        source=request.source,
        state=state,
        reason=reason,
        finished_at=at,
    )
