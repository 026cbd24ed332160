"""One step of a wave: render some nodes (a chunk at a time), write the manifests that changed
(state first, then `rendered`), publish `render_failed` for the nodes that failed (they keep
their last good manifest) and count it all in the wave's report. A full store fails the rest of
the step: its nodes get `render_failed` and the wave is tried again (incremental.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Final

from libs.common import subjects
from libs.common.bus.publisher import Publisher
from libs.common.models.node import Node
from libs.common.models.overlay import RenderFailedEvent
from libs.common.models.overlay_api import WaveReport
from libs.common.store.full import StoreFull
from services.overlayd.cluster import ClusterView
from services.overlayd.engine import NodeRender, OverlayRenderer, RenderError
from services.overlayd.manifests import WRITE_WINDOW, Manifests, build_manifest

CHUNK: Final = 1000  # nodes per render call; their manifests land chunk by chunk
FAILURES_KEPT: Final = 100

Result = NodeRender | RenderError


class Rendering:
    def __init__(
        self,
        view: ClusterView,
        renderer: OverlayRenderer,
        manifests: Manifests,
        publisher: Publisher,
    ) -> None:
        self.view = view
        self.renderer = renderer
        self.manifests = manifests
        self.publisher = publisher
        # Nodes whose last render failed, with why.
        self.failing: dict[str, RenderFailedEvent] = {}

    async def render(
        self,
        nodes: Sequence[str],
        merged: Mapping[str, Node],
        report: WaveReport,
        *,
        defer: bool = False,
        stop: Callable[[], bool] | None = None,
        chunk: int = CHUNK,
    ) -> tuple[dict[str, Result], list[str]]:
        """Render and commit `nodes` (names in `merged`); returns the results and the nodes
        whose manifest was left unwritten because `stop()` said so. `defer`: keep the node's
        all-node archives from the last wave (see OverlayRenderer.render_nodes)."""
        everyone = list(merged.values())
        results: dict[str, Result] = {}
        left: list[str] = []
        for start in range(0, len(nodes), chunk):
            batch = [merged[name] for name in nodes[start : start + chunk]]
            try:
                done = await self.renderer.render_nodes(
                    batch, everyone, self.view.images.items, defer_all_nodes=defer
                )
            except StoreFull as full:
                # This chunk and the rest keep their manifests; the wave is tried again.
                await self._store_full(full, [merged[name] for name in nodes[start:]], report)
                raise
            left += await self._commit(done, merged, report, stop)
            results.update(done)
        return results, left

    def forget(self, nodes: Sequence[str]) -> None:
        for name in nodes:
            self.failing.pop(name, None)

    async def _commit(
        self,
        done: Mapping[str, Result],
        merged: Mapping[str, Node],
        report: WaveReport,
        stop: Callable[[], bool] | None,
    ) -> list[str]:
        updates = []
        failed: list[RenderFailedEvent] = []
        for name, result in done.items():
            node = merged[name]
            if isinstance(result, RenderError):
                event = result.event(name)
                failed.append(event)
                self.failing[name] = event
                continue
            self.failing.pop(name, None)
            updates.append((build_manifest(node, result, self.view.image_of(node)), result))
        report.nodes_rendered += len(done)
        written, left = await self.manifests.write(updates, stop)
        report.manifests_written += written
        report.failed += len(failed)
        report.failures.extend(failed[: max(0, FAILURES_KEPT - len(report.failures))])
        await self._announce(failed)
        return left

    async def _store_full(self, full: StoreFull, nodes: Sequence[Node], report: WaveReport) -> None:
        """`render_failed` for nodes whose archives found no room, once per full disk: the
        wave is retried until space is back, and a retry that fails the same says nothing."""
        message = f"{full.advice}; overlayd renders again by itself once space is freed"
        failed = []
        for node in nodes:
            overlays = ",".join(dict.fromkeys([*node.system_overlay, *node.runtime_overlay]))
            event = RenderFailedEvent(node=node.name, overlay=overlays, message=message)
            known = self.failing.get(node.name)
            self.failing[node.name] = event
            if known is None or (known.overlay, known.message) != (overlays, message):
                failed.append(event)
        report.failed += len(nodes)
        report.failures.extend(failed[: max(0, FAILURES_KEPT - len(report.failures))])
        await self._announce(failed)

    async def _announce(self, failed: Sequence[RenderFailedEvent]) -> None:
        gate = asyncio.Semaphore(WRITE_WINDOW)

        async def announce(event: RenderFailedEvent) -> None:
            async with gate:
                await self.publisher.publish(subjects.node(event.node, "render_failed"), event)

        await asyncio.gather(*(announce(event) for event in failed))
