"""Which nodes need rendering after a change: a pure function of the change and the registry.

Two groups, so a single edit is answered fast:
- `urgent`: nodes whose own inputs changed (the node itself, a profile it uses, an overlay or
  image it uses, the server settings). Render them first, with `defer_all_nodes=True`.
- `followup`: nodes using an overlay that reads `nodes` (hosts): any node's change may change
  those files. Render them next, in one wave; the renderer's fingerprints make everything else
  of theirs free, and an all-node file whose content did not change (a comment edit) gives the
  same blob, so their manifests do not change.

Rendering more than needed is always correct (the same inputs give the same blobs), so where
in doubt this plans more, never less.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

import msgspec

from libs.common.models.node import Node, Profile
from libs.common.nodes.merge import expand_profiles

ChangeKind = Literal["node", "profile", "overlay", "image", "settings"]


class Change(msgspec.Struct, frozen=True, kw_only=True):
    kind: ChangeKind
    name: str = ""


class RenderPlan(msgspec.Struct, frozen=True, kw_only=True):
    urgent: frozenset[str] = frozenset()
    followup: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.urgent or self.followup)

    def nodes(self) -> frozenset[str]:
        return self.urgent | self.followup


def plan(
    changes: Iterable[Change],
    merged: Mapping[str, Node],
    nodes: Mapping[str, Node],
    profiles: Mapping[str, Profile],
    reads: Mapping[str, frozenset[str]],
) -> RenderPlan:
    """What to render after `changes`, given the registry as it is now: `merged` (node name →
    merged node; a deleted node is absent), `nodes` and `profiles` as stored, and `reads`
    (overlay name → the context variables it reads, from OverlayRenderer.overlay_reads; an
    overlay missing here is assumed to read everything)."""
    urgent: set[str] = set()
    any_node_changed = False
    for change in changes:
        if change.kind == "node":
            any_node_changed = True
            if change.name in merged:
                urgent.add(change.name)
        elif change.kind == "profile":
            users = nodes_with_profile(change.name, nodes, profiles)
            any_node_changed = any_node_changed or bool(users)
            urgent |= users
        elif change.kind == "overlay":
            urgent |= nodes_with_overlay(change.name, merged)
        elif change.kind == "image":
            urgent |= {name for name, node in merged.items() if node.image == change.name}
        else:
            urgent |= set(merged)
    followup: set[str] = set()
    if any_node_changed:
        followup = set(nodes_reading_nodes(merged, reads)) - urgent
    return RenderPlan(urgent=frozenset(urgent), followup=frozenset(followup))


def nodes_with_profile(
    profile: str, nodes: Mapping[str, Node], profiles: Mapping[str, Profile]
) -> set[str]:
    """Nodes that use `profile`, directly or through nested profiles."""
    return {
        name
        for name, node in nodes.items()
        if profile in node.profiles or profile in expand_profiles(node.profiles, profiles)
    }


def nodes_with_overlay(overlay: str, merged: Mapping[str, Node]) -> set[str]:
    return {
        name
        for name, node in merged.items()
        if overlay in node.system_overlay or overlay in node.runtime_overlay
    }


def nodes_reading_nodes(
    merged: Mapping[str, Node], reads: Mapping[str, frozenset[str]]
) -> set[str]:
    """Nodes with an overlay whose templates read `nodes` (or might: unknown overlays)."""
    found: set[str] = set()
    for name, node in merged.items():
        for overlay in (*node.system_overlay, *node.runtime_overlay):
            used = reads.get(overlay)
            if used is None or "nodes" in used:
                found.add(name)
                break
    return found
