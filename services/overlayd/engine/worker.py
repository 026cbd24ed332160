"""The CPU work of a wave, run in a worker thread: each node's archives from the fingerprints,
the remembered renders, or rendering, and the state kept from one wave to the next.

Everything here is only ever touched by one thread at a time (the renderer runs one wave at a
time and hands the worker a chunk, then waits for it).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Final

import msgspec

from libs.common.models.node import Node
from libs.common.newc import Member
from services.overlayd.engine.archive import ArchivePacker
from services.overlayd.engine.context import NodeViews, fingerprint
from services.overlayd.engine.errors import RenderError
from services.overlayd.engine.render import CompiledOverlay, render_overlay
from services.overlayd.engine.wave import Result, Wave

log = logging.getLogger("wolfpack.overlayd.render")

MAX_MEMO: Final = 400_000
RUNTIME: Final = "runtime"  # the slot of the combined runtime archive


class NodeRender(msgspec.Struct, frozen=True, kw_only=True):
    """A node's archives: `system_digests[i]` is the archive of `system_overlays[i]`."""

    node: str
    system_overlays: list[str]
    system_digests: list[str]
    runtime_overlays: list[str]
    runtime_digest: str
    # Overlays reading `nodes` whose previous archive was kept (render_nodes(defer_all_nodes)).
    deferred: list[str] = msgspec.field(default_factory=list)


class RenderWorker:
    """Renders nodes of a wave; remembers across waves what was rendered and stored."""

    def __init__(self) -> None:
        self.views = NodeViews()
        self.packer = ArchivePacker()
        # Fingerprint → blob digest (or the error it gave) of every stored render.
        self._memo: dict[bytes, Result] = {}
        # node → slot (overlay name or RUNTIME) → its last archive, for slots reading `nodes`.
        self._last: dict[str, dict[str, str]] = {}
        # Overlay name → (fingerprint, members) of its last render, for overlays that read
        # nothing per node: a runtime archive combining them need not render them again.
        self._shared: dict[str, tuple[bytes, list[Member]]] = {}

    def commit(self, wave: Wave) -> None:
        """The wave's blobs are stored: remember what it rendered."""
        self.packer.commit(wave.packed)
        self._memo.update(wave.memo)
        if len(self._memo) > MAX_MEMO:
            # Forget the oldest half (dicts keep insertion order): cheap, and rarely needed.
            for key in list(self._memo)[: len(self._memo) // 2]:
                del self._memo[key]
        for (node, slot), digest in wave.last.items():
            self._last.setdefault(node, {})[slot] = digest
        for fp, (name, members) in wave.members.items():
            self._shared[name] = (fp, members)

    def forget_nodes(self, names: Sequence[str]) -> None:
        for name in names:
            self._last.pop(name, None)

    def clear(self) -> None:
        self._memo.clear()
        self._last.clear()
        self._shared.clear()
        self.packer.clear()

    def render_chunk(
        self, wave: Wave, nodes: Sequence[Node], defer: bool
    ) -> dict[str, NodeRender | RenderError]:
        return {node.name: self._render_node(wave, node, defer) for node in nodes}

    def _render_node(self, wave: Wave, node: Node, defer: bool) -> NodeRender | RenderError:
        view, node_fp = self.views.get(node)
        last = self._last.get(node.name, {})
        deferred: list[str] = []
        system: list[str] = []
        for name in node.system_overlay:
            compiled = wave.overlays[name]
            if isinstance(compiled, RenderError):
                return compiled
            kept = last.get(name) if defer and "nodes" in compiled.reads else None
            if kept is not None:
                system.append(kept)
                deferred.append(name)
                continue
            fp = wave.fingerprint(compiled, node, node_fp)
            result = self._archive(wave, [(compiled, fp)], node, view, fp)
            if isinstance(result, RenderError):
                return result
            system.append(result)
            if "nodes" in compiled.reads:
                wave.last[(node.name, name)] = result
        runtime = self._runtime(wave, node, view, node_fp, last if defer else {}, deferred)
        if isinstance(runtime, RenderError):
            return runtime
        return NodeRender(
            node=node.name,
            system_overlays=list(node.system_overlay),
            system_digests=system,
            runtime_overlays=list(node.runtime_overlay),
            runtime_digest=runtime,
            deferred=deferred,
        )

    def _runtime(
        self,
        wave: Wave,
        node: Node,
        view: dict[str, Any],
        node_fp: bytes,
        last: dict[str, str],
        deferred: list[str],
    ) -> Result:
        compiled_parts: list[CompiledOverlay] = []
        for name in node.runtime_overlay:
            compiled = wave.overlays[name]
            if isinstance(compiled, RenderError):
                return compiled
            compiled_parts.append(compiled)
        reads_nodes = any("nodes" in c.reads for c in compiled_parts)
        kept = last.get(RUNTIME) if reads_nodes else None
        if kept is not None:
            deferred.append(RUNTIME)
            return kept
        parts = [(c, wave.fingerprint(c, node, node_fp)) for c in compiled_parts]
        combined = fingerprint(b"runtime", *(fp for _, fp in parts))
        result = self._archive(wave, parts, node, view, combined)
        if reads_nodes and isinstance(result, str):
            wave.last[(node.name, RUNTIME)] = result
        return result

    def _archive(
        self,
        wave: Wave,
        parts: list[tuple[CompiledOverlay, bytes]],
        node: Node,
        view: dict[str, Any],
        key: bytes,
    ) -> Result:
        """The blob of `parts` rendered for `node` and merged in order (a later overlay's file
        replaces an earlier one's), remembered under `key`."""
        found = wave.memo.get(key) or self._memo.get(key)
        if found is not None:
            return found
        merged: dict[str, Member] = {}
        result: Result
        current = parts[0][0].name if parts else RUNTIME
        try:
            for compiled, fp in parts:
                current = compiled.name
                for member in self._members(wave, compiled, node, view, fp):
                    merged[member.path] = member
            result, blob = self.packer.pack(merged.values(), wave.packed)
        except RenderError as err:
            result = err
        except Exception as err:  # a bug or a limit, not a template's fault: still this node's
            log.exception("rendering %s for %s", current, node.name)
            return RenderError(current, f"{type(err).__name__}: {err}")  # not remembered
        else:
            if blob is not None:
                wave.blobs.append(blob)
        wave.memo[key] = result
        return result

    def _members(
        self, wave: Wave, compiled: CompiledOverlay, node: Node, view: dict[str, Any], fp: bytes
    ) -> list[Member]:
        if compiled.per_node:
            return render_overlay(compiled, wave.context(compiled, node, view))
        # What reads nothing per node is the same list for every node: rendered once.
        found = wave.members.get(fp)
        if found is not None:
            return found[1]
        last = self._shared.get(compiled.name)
        if last is not None and last[0] == fp:
            members = last[1]
        else:
            members = render_overlay(compiled, wave.context(compiled, node, view))
        wave.members[fp] = (compiled.name, members)
        return members
