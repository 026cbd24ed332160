"""Boot stages from elsewhere into the status book: the recent `wolfpack.node.*.boot` events in
the stream at start (so a restart keeps the timelines), and tftpd's live `tftp` stages."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from typing import Final

import msgspec
import nats.errors
from nats.js import api

from libs.common import names, subjects
from libs.common.bus.connection import Bus
from libs.common.bus.subscription import Subscription
from libs.common.models.boot_stage import BootStage
from services.bootd.status import StatusBook

log = logging.getLogger("wolfpack.bootd.history")

BOOT_EVENTS: Final = subjects.every("node", "boot")
# How far back, and how long start-up may spend reading it.
REPLAY_HOURS: Final = 24
REPLAY_BUDGET: Final = 5.0
BATCH: Final = 1024


async def replay(bus: Bus, book: StatusBook) -> int:
    """Record the last REPLAY_HOURS of boot events; returns how many. Best effort: a slow or
    failing stream read leaves the book with what was read."""
    info = await bus.js.stream_info(names.STREAM, subjects_filter=BOOT_EVENTS)
    if not info.state.subjects:
        return 0
    since = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=REPLAY_HOURS)
    config = api.ConsumerConfig(
        deliver_policy=api.DeliverPolicy.BY_START_TIME,
        opt_start_time=since,
        ack_policy=api.AckPolicy.NONE,
        inactive_threshold=30.0,
    )
    psub = await bus.js.pull_subscribe(BOOT_EVENTS, stream=names.STREAM, config=config)
    decoder = msgspec.json.Decoder(BootStage)
    count = 0
    try:
        async with asyncio.timeout(REPLAY_BUDGET):
            while True:
                try:
                    msgs = await psub.fetch(BATCH, timeout=0.5)
                except nats.errors.TimeoutError:
                    break
                for msg in msgs:
                    with contextlib.suppress(msgspec.DecodeError):
                        book.record(decoder.decode(msg.data))
                        count += 1
                if msgs[-1].metadata.num_pending == 0:
                    break
    except TimeoutError:
        log.warning("boot history: read %d events in %ss; going on without the rest", count,
                    REPLAY_BUDGET)  # fmt: skip
    finally:
        with contextlib.suppress(nats.errors.Error):
            await psub.unsubscribe()
    return count


class TftpStages:
    """Follows tftpd's stages live (bootd records its own as it publishes them)."""

    def __init__(self, bus: Bus, book: StatusBook) -> None:
        self._bus = bus
        self._book = book
        self._sub: Subscription[BootStage] | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._sub = await self._bus.subscribe(BOOT_EVENTS, BootStage)
        self._task = asyncio.create_task(self._run(self._sub), name="bootd tftp stages")

    async def _run(self, sub: Subscription[BootStage]) -> None:
        async for _, stage in sub:
            if stage.stage == "tftp":
                self._book.record(stage)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._sub is not None:
            await self._sub.stop()
