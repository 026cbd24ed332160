"""The incremental renderer: changes in, waves of rendering out, boot manifests in KV `boot`.

Start-up renders every node and makes KV `boot` what a fresh full render gives (manifests of
nodes that are gone are deleted). After that each wave answers the changes that came since
the last one (pending.py coalesces them), rendering only the nodes engine.plan names:

1. the first edited nodes alone, their all-node files (hosts) kept from the last wave, so a
   single edit's manifest lands fast;
2. every other node whose own inputs changed;
3. when its turn comes (followup.py), a follow-up for the nodes whose all-node files may have
   changed, in chunks, paused as soon as new changes wait (after some progress): those come
   first, and the rest waits for its turn again. The host files (dnsmasq, hosts) are written
   in the background on their turn.

render_step.py writes a manifest only when it differs from the stored one; a node whose render
fails keeps its manifest. A step that finds the store full is tried again once space is freed
(libs/common/store/space_wait.py): its changes are kept, so nothing waits for the next edit.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Final

from libs.common.models.node import Node
from libs.common.models.overlay_api import OverlaydStatus, WaveReason, WaveReport
from libs.common.site.hostconfig import HostWriter
from libs.common.store.full import StoreFull
from libs.common.store.space_wait import SpaceWait
from services.overlayd import followup
from services.overlayd.cluster import ClusterView
from services.overlayd.engine import Change, NodeRender, RenderError, plan
from services.overlayd.engine.plan import nodes_reading_nodes
from services.overlayd.followup import FollowUp
from services.overlayd.pending import Batch, Pending
from services.overlayd.render_step import Rendering

log = logging.getLogger("wolfpack.overlayd")

FAST: Final = 8  # edited nodes rendered first, on their own
RETRY_DELAY: Final = 1.0
FREEZE_AFTER: Final = 1000  # nodes rendered in one wave


class Waves:
    def __init__(
        self,
        view: ClusterView,
        rendering: Rendering,
        hosts: HostWriter | None = None,
        pending: Pending | None = None,
    ) -> None:
        self.view = view
        self.rendering = rendering
        self.hosts = hosts
        self.pending = pending or Pending()
        self.followup = FollowUp()
        # Overlay → the context variables it reads (engine.plan needs them); dropped when the
        # overlay changes.
        self._reads: dict[str, frozenset[str]] = {}
        self._busy = False
        self._reconciled = False
        self._waves = 0
        self._last: WaveReport | None = None
        self._task: asyncio.Task[None] | None = None
        self._nudge = asyncio.Event()  # the host files were written (newer ones may wait)
        self._space = SpaceWait(rendering.renderer.store.root)

    # -- what the service calls -------------------------------------------------------------

    def notice(self, change: Change) -> None:
        """An event said something changed (the view already reflects it)."""
        self.pending.add(change)

    async def build(self, nodes: Sequence[str] | None) -> WaveReport:
        """Render `nodes` (all, forgetting remembered renders, if None) in the next wave."""
        if nodes is None:
            return await self.pending.request([Change(kind="settings")], fresh=True)
        return await self.pending.request([Change(kind="node", name=n) for n in nodes])

    def status(self) -> OverlaydStatus:
        return OverlaydStatus(
            reconciled=self._reconciled,
            busy=self._busy,
            waves=self._waves,
            pending=len(self.pending),
            followup=self.followup.size(len(self.view.nodes.items)),
            failing=len(self.rendering.failing),
            manifests=len(self.rendering.manifests.current),
            host_files_pending=self.hosts is not None and self.hosts.pending,
            last=self._last,
        )

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="overlayd waves")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.hosts is not None:
            await self.hosts.stop()

    # -- the loop ---------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._reconciled:
            try:
                await self._reconcile()
            except Exception as err:
                await self._pause(err, "the start-up render")
        while True:
            hosts = self.hosts if self.hosts is not None and self.hosts.due else None
            if not self.pending.arrived.is_set() and not self.followup.waits() and hosts is None:
                await self._idle()
            if self.pending.arrived.is_set():
                await self.pending.settled()
                batch = self.pending.take()
                try:
                    await self._wave(batch)
                except Exception as err:
                    self.pending.put_back(batch)
                    await self._pause(err, "a wave (its changes go into the next one)")
                else:
                    self._space.recovered()
            elif self.followup.waits():
                if await followup.turn(self.pending, self.followup.since):
                    try:
                        await self._follow_up()
                    except Exception as err:
                        await self._pause(err, "a follow-up")
            elif hosts is not None and await followup.turn(self.pending, hosts.since):
                hosts.write_in_background(self._nudge.set)

    async def _pause(self, err: Exception, what: str) -> None:
        """After a failed step, before it is tried again: a full store waits for space (one
        line in the log, and the nodes got `render_failed`); anything else is a bug, logged
        whole, tried again shortly."""
        if isinstance(err, StoreFull):
            log.warning("%s could not store its overlays: %s; trying again once space is freed",
                        what, err.strerror)  # fmt: skip
            await self._space.wait(err.free)
            return
        log.error("%s failed; trying again", what, exc_info=err)
        await asyncio.sleep(RETRY_DELAY)

    async def _reconcile(self) -> None:
        report, generation, merged = self._begin("reconcile")
        try:
            await self.rendering.render(sorted(merged), merged, report)
            manifests = self.rendering.manifests
            stale = [name for name in manifests.current if name not in merged]
            report.manifests_deleted = await manifests.delete(stale)
            self._hand_over(merged, generation)
            self._reconciled = True
        finally:
            self._end(report)
        log.info(
            "start-up render: %d nodes in %.2fs, %d manifests written, %d deleted, %d failed",
            report.nodes_rendered,
            report.seconds,
            report.manifests_written,
            report.manifests_deleted,
            report.failed,
        )

    async def _wave(self, batch: Batch) -> None:
        report, generation, merged = self._begin("build" if batch.waiters else "events")
        report.changes = len(batch.changes)
        try:
            await self._answer(batch, merged, report)
            self._hand_over(merged, generation)
        except BaseException as err:
            for waiter in batch.waiters:
                if not waiter.done():
                    waiter.set_exception(err if isinstance(err, Exception) else RuntimeError())
            raise
        finally:
            self._end(report)
        for waiter in batch.waiters:
            if not waiter.done():
                waiter.set_result(report)

    async def _answer(self, batch: Batch, merged: dict[str, Node], report: WaveReport) -> None:
        if batch.fresh:
            self.rendering.renderer.clear_caches()
            self._reads.clear()
        for change in batch.changes:
            if change.kind == "overlay":
                self._reads.pop(change.name, None)
        gone = [c.name for c in batch.changes if c.kind == "node" and c.name not in merged]
        report.manifests_deleted = await self.rendering.manifests.delete(gone)
        self.rendering.forget(gone)
        self.followup.nodes.intersection_update(merged)
        edited: list[str] = []
        if not batch.build:
            # A node's own change always makes it urgent: no need to plan before it.
            edited = [n for n in dict.fromkeys(batch.edited_nodes()) if n in merged][:FAST]
            results, _ = await self.rendering.render(edited, merged, report, defer=True)
            self.followup.add(n for n, r in results.items() if _deferred(r))
            if all(
                c.kind == "node" and (c.name in edited or c.name in gone) for c in batch.changes
            ):
                # Only node edits, all rendered: what is left is engine.plan's follow-up for
                # them (the nodes reading `nodes`), worked out when the follow-up runs rather
                # than now (it looks at every node; the next edit may be waiting).
                self.followup.add(unplanned=True)
                return
        nodes, profiles = self.view.nodes.items, self.view.profiles.items
        todo = plan(batch.changes, merged, nodes, profiles, await self._overlay_reads())
        urgent = todo.urgent.difference(edited)
        await self.rendering.render(sorted(urgent), merged, report)
        self.followup.nodes.difference_update(urgent)
        if batch.events:
            self.followup.add(todo.followup)

    async def _idle(self) -> None:
        """Wait for a change, or for the host files to be written (newer ones may wait)."""
        waits = [asyncio.ensure_future(e.wait()) for e in (self.pending.arrived, self._nudge)]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        self._nudge.clear()

    async def _follow_up(self) -> None:
        """All-node files (hosts) of the nodes that wait for them, until new changes come."""
        report, _, merged = self._begin("followup")
        try:
            waiting = self.followup
            if waiting.unplanned:
                waiting.unplanned = False
                waiting.add(nodes_reading_nodes(merged, await self._overlay_reads()))
            waiting.nodes.intersection_update(merged)
            interrupted = self.pending.arrived.is_set
            while waiting.nodes and not interrupted():
                chunk = sorted(waiting.nodes)[: followup.CHUNK]
                _, left = await self.rendering.render(chunk, merged, report, stop=interrupted)
                waiting.nodes.difference_update(set(chunk).difference(left))
            if waiting.waits():
                waiting.postpone()
        finally:
            self._end(report)

    # -- steps ------------------------------------------------------------------------------

    def _begin(self, reason: WaveReason) -> tuple[WaveReport, int, dict[str, Node]]:
        self._busy = True
        generation = self.view.generation
        # A copy: the view may merge again (an API render) while this wave awaits.
        merged = dict(self.view.merged())
        return WaveReport(reason=reason, started_at=time.time()), generation, merged

    def _end(self, report: WaveReport) -> None:
        if report.nodes_rendered >= FREEZE_AFTER:
            # What a big wave leaves (views, remembered renders) lives long: out of the
            # collector's sight, so a later full collection does not stall an edit for 200 ms.
            gc.collect()
            gc.freeze()
        self._busy = False
        self._waves += 1
        report.seconds = round(time.time() - report.started_at, 4)
        self._last = report

    def _hand_over(self, merged: Mapping[str, Node], generation: int) -> None:
        if self.hosts is not None:
            self.hosts.schedule(merged.values(), generation)

    async def _overlay_reads(self) -> dict[str, frozenset[str]]:
        for name in set(self.view.overlays_used()).difference(self._reads):
            self._reads[name] = await self.rendering.renderer.overlay_reads(name)
        return self._reads


def _deferred(result: NodeRender | RenderError) -> bool:
    return isinstance(result, NodeRender) and bool(result.deferred)
