"""OverlayRenderer: a wave of nodes → per node, one archive per system overlay and one for
its runtime overlays combined, every blob in the store before the answer.

Templates run in a worker thread, a chunk of nodes at a time, while another thread writes the
previous chunk's blobs (a bounded queue between them keeps memory flat). Renders are
remembered by fingerprint (see wave_inputs.py), so a wave only renders what changed, and what reads
nothing per node renders once for all. One node's failure is that node's RenderError; the
others go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

from libs.common.formats.newc import Member
from libs.common.models.node import Node
from libs.common.models.site import TemplateSettings
from libs.common.store.cas import ContentStore
from services.overlayd.engine.compiled_overlay import CompiledOverlay, render_overlay
from services.overlayd.engine.errors import RenderError
from services.overlayd.engine.helpers import HostFiles, ImageFiles
from services.overlayd.engine.keys import HostKeys, read_authorized_keys
from services.overlayd.engine.sources import OverlaySources
from services.overlayd.engine.wave_inputs import Wave
from services.overlayd.engine.worker import NodeRender, RenderWorker

T = TypeVar("T")

CHUNK: Final = 200  # nodes per trip to the worker thread
QUEUED_CHUNKS: Final = 2  # blob batches waiting for the writer


class OverlayRenderer:
    def __init__(
        self,
        sources: OverlaySources,
        settings: TemplateSettings,
        keys: HostKeys,
        store: ContentStore,
        *,
        data_dir: Path,
        host_roots: Sequence[Path] | None = None,
        ssh_dir: Path | None = Path("/root/.ssh"),
    ) -> None:
        self.sources = sources
        self.settings = settings
        self.keys = keys
        self.store = store
        self.data_dir = Path(data_dir)
        self.host_roots = host_roots
        self.ssh_dir = ssh_dir
        self._worker = RenderWorker()
        self._compiled: dict[str, CompiledOverlay] = {}
        self._lock = asyncio.Lock()

    # -- public API --

    async def render_nodes(
        self,
        nodes: Sequence[Node],
        all_nodes: Sequence[Node],
        images: Mapping[str, Any],
        *,
        build_time: str | None = None,
        defer_all_nodes: bool = False,
    ) -> dict[str, NodeRender | RenderError]:
        """Render `nodes` (merged) among `all_nodes` (merged: what `nodes` holds in templates);
        `images` is KV `images` by name (Structs or dicts).

        With `defer_all_nodes`, overlays reading `nodes` keep the archive they had for the node
        at the last wave (when there was one) and are listed in `deferred`: a fast first answer
        for a single edit, to be followed by a wave without it.
        """
        async with self._lock:
            wave = await self._wave(nodes, all_nodes, images, build_time)
            results: dict[str, NodeRender | RenderError] = {}
            queue: asyncio.Queue[list[bytes] | None] = asyncio.Queue(QUEUED_CHUNKS)
            writer = asyncio.create_task(self._write(queue))
            try:
                for start in range(0, len(nodes), CHUNK):
                    chunk = nodes[start : start + CHUNK]
                    done = await _in_thread(self._worker.render_chunk, wave, chunk, defer_all_nodes)
                    results.update(done)
                    if wave.blobs:
                        await queue.put(wave.blobs)
                        wave.blobs = []
                await queue.put(None)
                await writer
            except BaseException:
                # Nothing of this wave is remembered: it lived in `wave` only.
                writer.cancel()
                with contextlib.suppress(BaseException):
                    await writer
                raise
            self._worker.commit(wave)
            return results

    async def render_files(
        self,
        node: Node,
        overlay: str,
        all_nodes: Sequence[Node],
        images: Mapping[str, Any],
        *,
        build_time: str | None = None,
    ) -> list[Member]:
        """The files `overlay` holds for `node` (`wolfctl overlay show --render`), nothing
        stored; raises RenderError."""
        async with self._lock:
            wave = await self._wave([node], all_nodes, images, build_time, only=[overlay])
            compiled = wave.overlays[overlay]
            if isinstance(compiled, RenderError):
                raise compiled
            view, _ = self._worker.views.get(node)
            context = wave.context(compiled, node, view)
            members = await asyncio.to_thread(render_overlay, compiled, context)
            return sorted(members, key=lambda m: m.path)

    async def overlay_reads(self, name: str) -> frozenset[str]:
        """The context variables overlay `name` reads (plan.py's view of its dependencies)."""
        compiled = await self._compile(name)
        return compiled.reads if isinstance(compiled, CompiledOverlay) else frozenset()

    def clear_caches(self) -> None:
        """Forget every remembered render and blob (call after a garbage collection)."""
        self._worker.clear()

    # -- waves --

    async def _wave(
        self,
        nodes: Sequence[Node],
        all_nodes: Sequence[Node],
        images: Mapping[str, Any],
        build_time: str | None,
        only: Sequence[str] | None = None,
    ) -> Wave:
        wanted = set(only) if only is not None else set()
        if only is None:
            for node in nodes:
                wanted.update(node.system_overlay, node.runtime_overlay)
        names = sorted(wanted)
        compiled = await asyncio.gather(*(self._compile(name) for name in names))
        overlays = dict(zip(names, compiled, strict=True))
        views = self._worker.views
        gone = await asyncio.to_thread(views.update, [*all_nodes, *_missing(nodes, all_nodes)])
        self._worker.forget_nodes(gone)
        ssh_keys = await asyncio.to_thread(read_authorized_keys, self.ssh_dir)
        return Wave(
            views=views,
            overlays=overlays,
            settings=self.settings,
            keys=self.keys.for_templates(),
            authorized_keys=ssh_keys,
            images=images,
            build_time=build_time or _now(),
            host_files=HostFiles.for_data_dir(self.data_dir, self.host_roots),
            image_files=ImageFiles(self.data_dir / "images"),
        )

    async def _compile(self, name: str) -> CompiledOverlay | RenderError:
        tree = await self.sources.get_or_none(name)
        if tree is None:
            return RenderError(name, f"overlay {name!r} does not exist (neither shipped nor site)")
        compiled = self._compiled.get(name)
        if compiled is None or compiled.tree.revision != tree.revision:
            compiled = await asyncio.to_thread(CompiledOverlay, tree)
            self._compiled[name] = compiled
        return compiled

    async def _write(self, queue: asyncio.Queue[list[bytes] | None]) -> None:
        failure: BaseException | None = None
        while (blobs := await queue.get()) is not None:
            if failure is None:  # after a failure keep draining, so the renderer never blocks
                try:
                    await self.store.put_many(blobs)
                except Exception as err:
                    failure = err
        if failure is not None:
            raise failure


async def _in_thread(fn: Callable[..., T], *args: Any) -> T:
    """fn(*args) in a worker thread. If the caller is cancelled, the thread still runs to its
    end before the cancellation goes on, so the next wave never overlaps it."""
    running = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    try:
        return await asyncio.shield(running)
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            await running
        raise


def _missing(nodes: Sequence[Node], all_nodes: Sequence[Node]) -> list[Node]:
    """Nodes rendered but absent from `all_nodes` still need a view."""
    known = {n.name for n in all_nodes}
    return [n for n in nodes if n.name not in known]


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
