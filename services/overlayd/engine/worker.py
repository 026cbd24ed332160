"""The CPU work of a wave, run in a worker thread: each node's archives from the fingerprints,
the remembered renders, or rendering, and the state kept from one wave to the next.

Everything here is only ever touched by one thread at a time (the renderer runs one wave at a
time and hands the worker a chunk, then waits for it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from libs.common.formats.newc import Member
from libs.common.models.node import Node
from services.overlayd.engine.archive import ArchivePacker
from services.overlayd.engine.compiled_overlay import CompiledOverlay, render_overlay
from services.overlayd.engine.context import NodeViews, fingerprint
from services.overlayd.engine.errors import RenderError
from services.overlayd.engine.wave_inputs import Result, Wave

log = logging.getLogger("wolfpack.overlayd.render")

MAX_MEMO: Final = 400_000
RUNTIME: Final = "runtime"  # the slots of archives that may be kept (_combined)
SYSTEM: Final = "system"


class NodeRender(msgspec.Struct, frozen=True, kw_only=True):
    """A node's archives. Its system overlays go into at most two: `system_groups[i]` names the
    overlays whose files are in `system_digests[i]`. The first holds what is the same for every
    node (one blob, shared by all nodes with the same overlays), the second the node's own
    files; see RenderWorker._system for how the node's overlay order is kept."""

    node: str
    system_overlays: list[str]
    system_digests: list[str]
    system_groups: list[list[str]] = msgspec.field(default_factory=list)
    runtime_overlays: list[str]
    runtime_digest: str
    # The archives (SYSTEM: the shared one, RUNTIME) kept from the last render although an
    # overlay in them reads `nodes` (render_nodes(defer_all_nodes)).
    deferred: list[str] = msgspec.field(default_factory=list)


@dataclass
class _NodeRender:
    """One node's render in a wave: its inputs, and the archives it keeps from the last one."""

    wave: Wave
    node: Node
    view: dict[str, Any]
    node_fp: bytes
    kept: dict[str, tuple[bytes, str]]
    deferred: list[str] = field(default_factory=list)


class RenderWorker:
    """Renders nodes of a wave; remembers across waves what was rendered and stored."""

    def __init__(self) -> None:
        self.views = NodeViews()
        self.packer = ArchivePacker()
        # Fingerprint → blob digest (or the error it gave) of every stored render.
        self._memo: dict[bytes, Result] = {}
        # node → slot (SYSTEM, RUNTIME) → (what it is made of, its last archive), for archives
        # with overlays reading `nodes`.
        self._last: dict[str, dict[str, tuple[bytes, str]]] = {}
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
        kept = self._last.get(node.name, {}) if defer else {}
        render = _NodeRender(wave, node, view, node_fp, kept)
        system = self._compiled(wave, node.system_overlay)
        runtime = self._compiled(wave, node.runtime_overlay)
        if isinstance(system, RenderError):
            return system
        if isinstance(runtime, RenderError):
            return runtime
        groups: list[tuple[list[str], str]] = []
        shared = [c for c in system if not c.per_node]
        if shared:
            digest = self._combined(render, SYSTEM, shared, b"shared")
            if isinstance(digest, RenderError):
                return digest
            groups.append(([c.name for c in shared], digest))
        if len(shared) < len(system):
            own = self._own(render, system)
            if isinstance(own, RenderError):
                return own
            groups.append(([c.name for c in system if c.per_node], own))
        runtime_digest = self._combined(render, RUNTIME, runtime, b"runtime")
        if isinstance(runtime_digest, RenderError):
            return runtime_digest
        return NodeRender(
            node=node.name,
            system_overlays=list(node.system_overlay),
            system_digests=[digest for _, digest in groups],
            system_groups=[names for names, _ in groups],
            runtime_overlays=list(node.runtime_overlay),
            runtime_digest=runtime_digest,
            deferred=render.deferred,
        )

    @staticmethod
    def _compiled(wave: Wave, names: Sequence[str]) -> list[CompiledOverlay] | RenderError:
        found: list[CompiledOverlay] = []
        for name in names:
            compiled = wave.overlays[name]
            if isinstance(compiled, RenderError):
                return compiled
            found.append(compiled)
        return found

    def _combined(
        self, render: _NodeRender, slot: str, overlays: list[CompiledOverlay], kind: bytes
    ) -> Result:
        """One archive merging `overlays` in order. If some read `nodes` and the render may
        defer, the node's last archive of the slot is kept as long as everything else in it
        is unchanged: the follow-up renders it again."""
        wave, node, node_fp = render.wave, render.node, render.node_fp
        reading_nodes = [c.name for c in overlays if "nodes" in c.reads]
        made_of = b""
        if reading_nodes:
            # What the archive is made of, but for the all-node inputs.
            others = [
                wave.fingerprint(c, node, node_fp) for c in overlays if "nodes" not in c.reads
            ]
            made_of = fingerprint(kind, *(c.name.encode() for c in overlays), *others)
            last = render.kept.get(slot)
            if last is not None and last[0] == made_of:
                render.deferred.append(slot)
                return last[1]
        parts = [(c, wave.fingerprint(c, node, node_fp)) for c in overlays]
        key = fingerprint(kind, *(fp for _, fp in parts))
        result = self._archive(wave, parts, node, render.view, key)
        if reading_nodes and isinstance(result, str):
            wave.last[(node.name, slot)] = (made_of, result)
        return result

    def _own(self, render: _NodeRender, overlays: list[CompiledOverlay]) -> Result:
        """The archive of the node's own files: the overlays that read something of the node
        merged in order, less every path that a shared overlay after them writes (that one
        wins in the node's order, and it is in the shared archive, unpacked first)."""
        wave, node, view, node_fp = render.wave, render.node, render.view, render.node_fp
        plan: list[CompiledOverlay] = []
        key_parts = [b"own"]
        for compiled in overlays:
            if compiled.per_node:
                key_parts.append(wave.fingerprint(compiled, node, node_fp))
            elif plan:  # a shared overlay after an own one: only its paths matter
                key_parts.append(self._shared_paths(render, compiled)[0])
            else:
                continue
            plan.append(compiled)
        key = fingerprint(*key_parts)
        found = wave.memo.get(key) or self._memo.get(key)
        if found is not None:
            return found
        merged: dict[str, Member] = {}
        current = plan[0].name
        try:
            for compiled in plan:
                current = compiled.name
                if compiled.per_node:
                    for member in render_overlay(compiled, wave.context(compiled, node, view)):
                        merged[member.path] = member
                else:
                    for path in self._shared_paths(render, compiled)[1]:
                        merged.pop(path, None)
        except RenderError as err:
            wave.memo[key] = err
            return err
        except Exception as err:  # a bug or a limit, not a template's fault: still this node's
            log.exception("rendering %s for %s", current, node.name)
            return RenderError(current, f"{type(err).__name__}: {err}")  # not remembered
        return self._pack(wave, key, merged.values())

    def _shared_paths(
        self, render: _NodeRender, compiled: CompiledOverlay
    ) -> tuple[bytes, frozenset[str]]:
        """The paths a shared overlay writes, and their fingerprint. While the node's archive
        of all-node overlays is kept, their last render tells (the paths of a hosts file do
        not change with the nodes); otherwise this wave's render."""
        wave = render.wave
        if "nodes" in compiled.reads and SYSTEM in render.deferred:
            last = self._shared.get(compiled.name)
            if last is not None:
                return wave.paths_of(last[0], last[1])
        fp = wave.fingerprint(compiled, render.node, render.node_fp)
        members = self._members(wave, compiled, render.node, render.view, fp)
        return wave.paths_of(fp, members)

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
        current = parts[0][0].name if parts else RUNTIME
        try:
            for compiled, fp in parts:
                current = compiled.name
                for member in self._members(wave, compiled, node, view, fp):
                    merged[member.path] = member
        except RenderError as err:
            wave.memo[key] = err
            return err
        except Exception as err:  # a bug or a limit, not a template's fault: still this node's
            log.exception("rendering %s for %s", current, node.name)
            return RenderError(current, f"{type(err).__name__}: {err}")  # not remembered
        return self._pack(wave, key, merged.values())

    def _pack(self, wave: Wave, key: bytes, members: Iterable[Member]) -> Result:
        """The blob of `members`, remembered under `key`."""
        digest, blob = self.packer.pack(members, wave.packed)
        if blob is not None:
            wave.blobs.append(blob)
        wave.memo[key] = digest
        return digest

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
