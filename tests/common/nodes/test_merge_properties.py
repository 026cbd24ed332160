"""Properties of merging that must hold for any node and profiles (hypothesis)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from libs.common.models.node import IPMI, Kernel, NetDev, Node, Profile
from libs.common.nodes.merge import merge_node, merge_profile

WORDS = st.sampled_from(["a", "b", "c", "d"])
ITEMS = st.one_of(WORDS, WORDS.map(lambda w: "~" + w))
LISTS = st.lists(ITEMS, max_size=6)
SCALARS = st.none() | st.sampled_from(["x", "y", "z"])
TAGS = st.dictionaries(st.sampled_from(["k1", "k2", "k3"]), st.sampled_from(["v1", "v2"]))
NETDEVS = st.dictionaries(
    st.sampled_from(["default", "ib"]),
    st.builds(
        NetDev,
        ipaddr=SCALARS,
        onboot=st.none() | st.booleans(),
        mtu=st.none() | st.integers(68, 9000),
        tags=TAGS,
    ),
    max_size=2,
)
RESOURCES = st.dictionaries(
    st.sampled_from(["fstab", "motd", "extra"]),
    st.one_of(SCALARS, st.lists(WORDS, max_size=3), st.dictionaries(WORDS, SCALARS, max_size=2)),
    max_size=2,
)
COMMON: dict[str, Any] = {
    "image": SCALARS,
    "init": SCALARS,
    "comment": SCALARS,
    "kernel": st.none() | st.builds(Kernel, version=SCALARS, args=LISTS),
    "ipmi": st.none() | st.builds(IPMI, username=SCALARS, write=st.none() | st.booleans()),
    "system_overlay": LISTS,
    "runtime_overlay": LISTS,
    "tags": TAGS,
    "network_devices": NETDEVS,
    "resources": RESOURCES,
}
PROFILES = st.lists(st.builds(Profile, **COMMON), max_size=4)
NODES = st.builds(Node, asset_key=SCALARS, discoverable=st.none() | st.booleans(), **COMMON)


def layered(node: Node, layers: list[Profile]) -> tuple[Node, dict[str, Profile]]:
    store = {f"p{i}": msgspec.structs.replace(p, name=f"p{i}") for i, p in enumerate(layers)}
    return msgspec.structs.replace(node, name="node", profiles=list(store)), store


def leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, value) of every set scalar and every list, as provenance names them."""
    if isinstance(value, msgspec.Struct):
        for field in value.__struct_fields__:
            if not path and field in ("name", "revision", "profiles"):
                continue
            yield from leaves(getattr(value, field), f"{path}.{field}".lstrip("."))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, f"{path}.{key}")
    elif value is not None:
        yield path, value


def get(obj: Any, path: str) -> Any:
    for part in path.split("."):
        if obj is None:
            return None
        obj = obj.get(part) if isinstance(obj, dict) else getattr(obj, part, None)
    return obj


@settings(max_examples=300)
@given(NODES, PROFILES)
def test_merging_equals_applying_layers_left_to_right(node: Node, layers: list[Profile]) -> None:
    node, store = layered(node, layers)
    merged = merge_node(node, store).node

    acc = Profile(name="acc")
    for name, profile in store.items():
        step = msgspec.structs.replace(profile, name=name, profiles=["acc"])
        acc = msgspec.structs.replace(
            merge_profile(step, {"acc": acc}).profile, name="acc", profiles=[]
        )
    folded = merge_node(msgspec.structs.replace(node, profiles=["acc"]), {"acc": acc}).node

    assert msgspec.structs.replace(merged, profiles=[]) == msgspec.structs.replace(
        folded, profiles=[]
    )


@given(NODES, PROFILES)
def test_node_negation_removes_every_inherited_entry(node: Node, layers: list[Profile]) -> None:
    node, store = layered(node, layers)
    merged = merge_node(node, store).node
    for field in ("system_overlay", "runtime_overlay"):
        for item in getattr(node, field):
            if item.startswith("~"):
                assert item[1:] not in getattr(merged, field)
    if node.kernel is not None and merged.kernel is not None:
        for item in node.kernel.args:
            if item.startswith("~"):
                assert item[1:] not in merged.kernel.args


@given(NODES, PROFILES)
def test_merged_lists_hold_no_negations_and_no_duplicates(
    node: Node, layers: list[Profile]
) -> None:
    node, store = layered(node, layers)
    for _, value in leaves(merge_node(node, store).node):
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            assert len(set(value)) == len(value)
            assert not any(v.startswith("~") for v in value)


@settings(max_examples=300)
@given(NODES, PROFILES)
def test_provenance_names_a_layer_that_has_the_value(node: Node, layers: list[Profile]) -> None:
    node, store = layered(node, layers)
    result = merge_node(node, store)
    sources: dict[str, Any] = {**store, "node": node}
    merged_leaves = dict(leaves(result.node))
    for path, source in result.provenance.items():
        value = get(result.node, path)
        if isinstance(source, list):
            assert len(source) == len(value)
            for item, src in zip(value, source, strict=True):
                assert item in get(sources[src], path)
        else:
            assert get(sources[source], path) == value
    # and every set merged value has a provenance (a list: one source per element)
    for path, value in merged_leaves.items():
        if value == []:
            continue
        assert path in result.provenance, path


@settings(max_examples=300)
@given(NODES, PROFILES)
def test_node_own_scalar_always_wins(node: Node, layers: list[Profile]) -> None:
    node, store = layered(node, layers)
    result = merge_node(node, store)
    for path, value in leaves(node):
        if isinstance(value, list | dict):
            continue
        assert get(result.node, path) == value, path
        assert result.provenance[path] == "node", path
