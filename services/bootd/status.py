"""Boot status: every fetch or agent report becomes a `wolfpack.node.<name>.boot` event and an
entry in each node's in-memory timeline (what `GET /api/v1/status` shows)."""

from __future__ import annotations

import collections
import logging
from typing import Final

import msgspec
import nats.errors

from libs.common import subjects
from libs.common.bus.connection import Bus
from libs.common.models.boot_stage import BootStage
from libs.common.models.boot_status import NodeBootStatus

log = logging.getLogger("wolfpack.bootd.status")

TIMELINE: Final = 32


class StatusBook:
    """The last TIMELINE stages of every node, newest last."""

    def __init__(self, length: int = TIMELINE) -> None:
        self._length = length
        self._timelines: dict[str, collections.deque[BootStage]] = {}

    def record(self, stage: BootStage) -> None:
        timeline = self._timelines.get(stage.node)
        if timeline is None:
            timeline = self._timelines[stage.node] = collections.deque(maxlen=self._length)
        timeline.append(stage)

    def snapshot(self) -> list[NodeBootStatus]:
        found = []
        for node in sorted(self._timelines):
            timeline = list(self._timelines[node])
            last = timeline[-1]
            found.append(
                NodeBootStatus(
                    node=node,
                    stage=last.stage,
                    at=last.at,
                    remote=last.remote,
                    ok=last.ok,
                    error=last.error,
                    timeline=timeline,
                )
            )
        return found


class StagePublisher:
    """Records a stage and publishes it without waiting: the stream captures `wolfpack.>`, so a
    core publish is stored too, and a booting node never waits on NATS."""

    def __init__(self, bus: Bus, book: StatusBook) -> None:
        self._bus = bus
        self._book = book
        self._encoder = msgspec.json.Encoder()

    async def publish(self, stage: BootStage) -> None:
        self._book.record(stage)
        try:
            await self._bus.nc.publish(
                subjects.node(stage.node, "boot"), self._encoder.encode(stage)
            )
        except nats.errors.Error as err:
            log.warning("boot stage of %s not published: %s", stage.node, err)
