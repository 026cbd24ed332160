"""What to render after a change: the nodes whose own inputs changed first, then the nodes whose
all-node overlays (hosts) may have changed."""

from __future__ import annotations

from libs.common.models.node import Node, Profile
from libs.common.nodes.merge import merge_node
from services.overlayd.engine.plan import Change, RenderPlan, plan

PROFILES = {
    "base": Profile(name="base", system_overlay=["hostname", "hosts"], runtime_overlay=["hosts"]),
    "gpu": Profile(name="gpu", profiles=["base"], tags={"gpu": "yes"}),
    "other": Profile(name="other", system_overlay=["hostname"]),
}
NODES = {
    "n1": Node(name="n1", profiles=["base"], image="rocky"),
    "n2": Node(name="n2", profiles=["gpu"], image="rocky"),
    "n3": Node(name="n3", profiles=["other"], image="alma"),
}
READS = {"hostname": frozenset({"node"}), "hosts": frozenset({"nodes", "settings"})}


def merged() -> dict[str, Node]:
    return {name: merge_node(node, PROFILES).node for name, node in NODES.items()}


def planned(*changes: Change, reads: dict[str, frozenset[str]] = READS) -> RenderPlan:
    return plan(changes, merged(), NODES, PROFILES, reads)


def test_a_node_edit_renders_it_first_then_the_nodes_with_hosts() -> None:
    result = planned(Change(kind="node", name="n3"))
    assert result.urgent == {"n3"}
    assert result.followup == {"n1", "n2"}


def test_a_deleted_node_leaves_only_the_hosts_followup() -> None:
    result = plan([Change(kind="node", name="gone")], merged(), NODES, PROFILES, READS)
    assert result.urgent == frozenset()
    assert result.followup == {"n1", "n2"}


def test_a_profile_edit_reaches_nodes_through_nested_profiles() -> None:
    assert planned(Change(kind="profile", name="base")).urgent == {"n1", "n2"}
    assert planned(Change(kind="profile", name="gpu")).urgent == {"n2"}
    unused = planned(Change(kind="profile", name="unused"))
    assert not unused


def test_an_overlay_edit_renders_the_nodes_that_use_it() -> None:
    result = planned(Change(kind="overlay", name="hosts"))
    assert result.urgent == {"n1", "n2"}
    assert result.followup == frozenset()
    assert planned(Change(kind="overlay", name="hostname")).urgent == {"n1", "n2", "n3"}


def test_an_image_edit_renders_the_nodes_that_boot_it() -> None:
    assert planned(Change(kind="image", name="alma")).urgent == {"n3"}


def test_settings_render_everything() -> None:
    assert planned(Change(kind="settings")).nodes() == {"n1", "n2", "n3"}


def test_an_overlay_of_unknown_reads_counts_as_reading_nodes() -> None:
    result = planned(Change(kind="node", name="n1"), reads={"hostname": frozenset({"node"})})
    # hosts is not in `reads`: assumed to read `nodes`, so n2 (not n3) follows up.
    assert result.followup == {"n2"}
