"""The events of the lab's nodes as they happen on NATS: boot stages (tftpd, bootd, the
agent's reports through bootd), renders and failed renders (overlayd)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import nats
from nats.aio.client import Client
from nats.aio.msg import Msg

from libs.common import subjects
from libs.common.models.boot_stage import BootStage
from libs.common.models.overlay import RenderedEvent, RenderFailedEvent


@dataclass(frozen=True)
class Arrived:
    at: float  # time.monotonic() when it arrived
    event: Any


@dataclass
class NodeEvents:
    """Every `wolfpack.node.*.{boot,rendered,render_failed}` event since it connected."""

    nc: Client
    stages: list[Arrived] = field(default_factory=list)
    renders: list[Arrived] = field(default_factory=list)
    failures: list[Arrived] = field(default_factory=list)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    @classmethod
    async def connect(cls, url: str) -> NodeEvents:
        watcher = cls(await nats.connect(url, name="wolfpack-lab"))
        await watcher.nc.subscribe(subjects.every("node", "boot"), cb=watcher._on_stage)
        await watcher.nc.subscribe(subjects.every("node", "rendered"), cb=watcher._on_render)
        await watcher.nc.subscribe(subjects.every("node", "render_failed"), cb=watcher._on_failure)
        await watcher.nc.flush()
        return watcher

    async def close(self) -> None:
        await self.nc.close()

    async def _add(self, into: list[Arrived], event: Any) -> None:
        into.append(Arrived(time.monotonic(), event))
        async with self._changed:
            self._changed.notify_all()

    async def _on_stage(self, msg: Msg) -> None:
        await self._add(self.stages, msgspec.json.decode(msg.data, type=BootStage))

    async def _on_render(self, msg: Msg) -> None:
        await self._add(self.renders, msgspec.json.decode(msg.data, type=RenderedEvent))

    async def _on_failure(self, msg: Msg) -> None:
        await self._add(self.failures, msgspec.json.decode(msg.data, type=RenderFailedEvent))

    def of(self, node: str) -> list[BootStage]:
        return [a.event for a in self.stages if a.event.node == node]

    async def wait(self, what: str, found: Callable[[], Arrived | None], within: float) -> Arrived:
        """The first event `found()` returns, waiting up to `within` s for it to arrive."""
        try:
            async with asyncio.timeout(within), self._changed:
                while (hit := found()) is None:
                    await self._changed.wait()
                return hit
        except TimeoutError:
            raise TimeoutError(f"no {what} within {within:g} s") from None

    async def stage(
        self,
        node: str,
        stage: str,
        within: float,
        since: float = 0.0,
        ok: bool = True,
        where: Callable[[BootStage], bool] = lambda _: True,
    ) -> Arrived:
        """The first `stage` event of `node` that arrived after `since` (monotonic)."""

        def found() -> Arrived | None:
            for arrived in self.stages:
                event: BootStage = arrived.event
                if (
                    arrived.at >= since
                    and event.node == node
                    and event.stage == stage
                    and event.ok == ok
                    and where(event)
                ):
                    return arrived
            return None

        return await self.wait(f"{stage} stage of {node}", found, within)

    async def rendered(
        self, node: str, within: float, since: float, where: Callable[[RenderedEvent], bool]
    ) -> Arrived:
        """The first render of `node` after `since` that `where` accepts; a failed render
        of it ends the wait with its message."""

        def found() -> Arrived | None:
            for failed in self.failures:
                if failed.at >= since and failed.event.node == node:
                    raise RuntimeError(f"render of {node} failed: {failed.event.message}")
            for arrived in self.renders:
                if arrived.at >= since and arrived.event.node == node and where(arrived.event):
                    return arrived
            return None

        return await self.wait(f"render of {node}", found, within)
