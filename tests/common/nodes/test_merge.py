"""Merge rules of nodes and profiles (Warewulf 4 semantics), case by case."""

from __future__ import annotations

import msgspec
import pytest

from libs.common.models.node import (
    IPMI,
    Disk,
    Filesystem,
    Kernel,
    NetDev,
    Node,
    Partition,
    Profile,
)
from libs.common.nodes.merge import expand_profiles, merge_node, merge_profile


def profiles_of(**kw: Profile) -> dict[str, Profile]:
    """Profiles by name, each named after its key."""
    return {name: msgspec.structs.replace(p, name=name) for name, p in kw.items()}


def nested(**chains: list[str]) -> dict[str, Profile]:
    return {name: Profile(name=name, profiles=parents) for name, parents in chains.items()}


# Warewulf's own getNodeProfiles cases (internal/pkg/node/mergo_test.go), every profile defined.
@pytest.mark.parametrize(
    ("node_profiles", "store", "expected"),
    [
        ([], {}, []),
        (["p1"], nested(p1=[]), ["p1"]),
        (["p1", "p2"], nested(p1=[], p2=[]), ["p1", "p2"]),
        (["p1", "p2"], nested(p1=[], p2=["~p1"]), ["p2"]),
        (["p1", "p2"], nested(p1=[], p2=["~p3"], p3=[]), ["p1", "p2"]),
        (["p1"], nested(p1=["p2"], p2=[]), ["p2", "p1"]),
        (["p1"], nested(p1=["p2"], p2=["p3"], p3=[]), ["p3", "p2", "p1"]),
        (["p1", "p2", "p3"], nested(p1=[], p2=["~p1"], p3=["~p1"]), ["p2", "p3"]),
        (["p1", "p4"], nested(p1=["p2"], p2=["p3"], p3=[], p4=["~p2"]), ["p3", "p1", "p4"]),
        (["p1"], nested(p1=["p2"], p2=["p3"], p3=["p1"]), ["p3", "p2", "p1"]),
        (["p1"], nested(p1=["p2"], p2=["~p1", "p3"], p3=["p1"]), ["p3", "p2"]),
        (
            ["pa1", "pb1"],
            nested(pa1=["pa2"], pa2=[], pb1=["~pa2", "pb2"], pb2=["pa2"]),
            ["pa1", "pb2", "pb1"],
        ),
    ],
)
def test_expand_profiles_like_warewulf(
    node_profiles: list[str], store: dict[str, Profile], expected: list[str]
) -> None:
    assert expand_profiles(node_profiles, store) == expected


def test_expand_profiles_drops_unknown_and_duplicates() -> None:
    store = nested(a=["b"], b=[])
    assert expand_profiles(["missing", "a", "b", "a"], store) == ["b", "a"]


def test_self_cycle_terminates() -> None:
    store = nested(a=["a"])
    assert expand_profiles(["a"], store) == ["a"]
    merged = merge_profile(store["a"], store)
    assert merged.profile.profiles == []


def test_scalar_rightmost_profile_wins_and_node_wins_over_all() -> None:
    store = profiles_of(
        p1=Profile(image="img1", init="/sbin/init", root="initramfs"),
        p2=Profile(image="img2", root="tmpfs"),
    )
    merged = merge_node(Node(name="n1", profiles=["p1", "p2"], root="zram"), store)
    assert (merged.node.image, merged.node.init, merged.node.root) == ("img2", "/sbin/init", "zram")
    assert merged.provenance["image"] == "p2"
    assert merged.provenance["init"] == "p1"
    assert merged.provenance["root"] == "n1"
    assert "cluster_name" not in merged.provenance  # only set fields appear


def test_nested_profiles_merge_before_their_parent() -> None:
    store = {
        "default": Profile(name="default", image="base", kernel=Kernel(args=["quiet"])),
        "compute": Profile(name="compute", profiles=["default"], image="compute-img"),
        "gpu": Profile(name="gpu", profiles=["compute"], kernel=Kernel(args=["nouveau.off"])),
    }
    merged = merge_node(Node(name="g1", profiles=["gpu"]), store)
    assert merged.node.profiles == ["default", "compute", "gpu"]
    assert merged.node.image == "compute-img"
    assert merged.provenance["image"] == "compute"
    assert merged.node.kernel == Kernel(args=["quiet", "nouveau.off"])
    assert merged.provenance["kernel.args"] == ["default", "gpu"]


def test_lists_append_deduplicate_and_negate() -> None:
    store = profiles_of(
        default=Profile(
            system_overlay=["wwinit", "hosts", "issue"],
            runtime_overlay=["ro1", "ro2"],
            kernel=Kernel(args=["quiet", "crashkernel=no"]),
        ),
        extra=Profile(system_overlay=["hosts", "nvidia"], runtime_overlay=["~ro1"]),
    )
    node = Node(
        name="n1",
        profiles=["default", "extra"],
        system_overlay=["so4", "~issue"],
        runtime_overlay=["ro1", "ro3"],  # a later layer may add back what an earlier removed
        kernel=Kernel(args=["~quiet", "console=ttyS0"]),
    )
    merged = merge_node(node, store)
    assert merged.node.system_overlay == ["wwinit", "hosts", "nvidia", "so4"]
    assert merged.provenance["system_overlay"] == ["default", "default", "extra", "n1"]
    assert merged.node.runtime_overlay == ["ro2", "ro1", "ro3"]
    assert merged.provenance["runtime_overlay"] == ["default", "n1", "n1"]
    assert merged.node.kernel is not None
    assert merged.node.kernel.args == ["crashkernel=no", "console=ttyS0"]
    assert merged.provenance["kernel.args"] == ["default", "n1"]


def test_negation_within_one_layer_wins_over_its_own_entry() -> None:
    merged = merge_node(Node(name="n1", system_overlay=["x", "~x", "y"]), {})
    assert merged.node.system_overlay == ["y"]


def test_maps_merge_key_by_key_with_struct_values_field_by_field() -> None:
    store = profiles_of(
        p1=Profile(
            tags={"rack": "r1", "role": "compute"},
            network_devices={
                "default": NetDev(type="ethernet", netmask="255.255.255.0", tags={"a": "1"})
            },
            ipmi=IPMI(username="admin", template="ipmitool.tmpl", tags={"x": "1"}),
        ),
        p2=Profile(tags={"rack": "r2"}, network_devices={"ib": NetDev(type="infiniband")}),
    )
    node = Node(
        name="n1",
        profiles=["p1", "p2"],
        tags={"slot": "4"},
        network_devices={"default": NetDev(ipaddr="10.0.0.1", tags={"b": "2"})},
        ipmi=IPMI(password="pw"),
    )
    merged = merge_node(node, store).node
    assert merged.tags == {"rack": "r2", "role": "compute", "slot": "4"}
    assert merged.network_devices == {
        "default": NetDev(
            type="ethernet", ipaddr="10.0.0.1", netmask="255.255.255.0", tags={"a": "1", "b": "2"}
        ),
        "ib": NetDev(type="infiniband"),
    }
    assert merged.ipmi == IPMI(
        username="admin", password="pw", template="ipmitool.tmpl", tags={"x": "1"}
    )
    prov = merge_node(node, store).provenance
    assert prov["tags.rack"] == "p2"
    assert prov["tags.slot"] == "n1"
    assert prov["network_devices.default.netmask"] == "p1"
    assert prov["network_devices.default.ipaddr"] == "n1"
    assert prov["network_devices.default.tags.a"] == "p1"
    assert prov["ipmi.username"] == "p1"
    assert prov["ipmi.password"] == "n1"


def test_disks_partitions_and_filesystems_merge_deeply() -> None:
    store = profiles_of(
        disks=Profile(
            disks={
                "/dev/vda": Disk(
                    wipe_table=False,
                    partitions={"scratch": Partition(number=1, should_exist=True)},
                )
            },
            filesystems={"/dev/vda1": Filesystem(format="ext4", options=["-F"])},
        )
    )
    node = Node(
        name="n1",
        profiles=["disks"],
        disks={"/dev/vda": Disk(partitions={"scratch": Partition(size_mib=1024)})},
        filesystems={"/dev/vda1": Filesystem(path="/scratch", options=["-F", "-m0"])},
    )
    merged = merge_node(node, store)
    assert merged.node.disks["/dev/vda"] == Disk(
        wipe_table=False,
        partitions={"scratch": Partition(number=1, size_mib=1024, should_exist=True)},
    )
    assert merged.node.filesystems["/dev/vda1"] == Filesystem(
        format="ext4", path="/scratch", options=["-F", "-m0"]
    )
    assert merged.provenance["disks./dev/vda.partitions.scratch.size_mib"] == "n1"
    assert merged.provenance["disks./dev/vda.partitions.scratch.number"] == "disks"
    assert merged.provenance["filesystems./dev/vda1.options"] == ["disks", "n1"]


def test_resources_merge_maps_and_append_lists() -> None:
    home = {"spec": "warewulf:/home", "file": "/home", "vfstype": "nfs"}
    opt = {"spec": "warewulf:/opt", "file": "/opt", "vfstype": "nfs"}
    store = profiles_of(p1=Profile(resources={"fstab": [home], "ignition": {"a": 1}}))
    node = Node(
        name="n1",
        profiles=["p1"],
        resources={"fstab": [home, opt], "ignition": {"b": 2}, "motd": "hi"},
    )
    merged = merge_node(node, store)
    assert merged.node.resources == {
        "fstab": [home, opt],
        "ignition": {"a": 1, "b": 2},
        "motd": "hi",
    }
    assert merged.provenance["resources.fstab"] == ["p1", "n1"]
    assert merged.provenance["resources.ignition.a"] == "p1"


def test_merge_does_not_touch_its_inputs() -> None:
    home = {"spec": "warewulf:/home"}
    profile = Profile(name="p", resources={"fstab": [home]}, system_overlay=["a"])
    merged = merge_node(Node(name="n", profiles=["p"], system_overlay=["b"]), {"p": profile})
    merged.node.system_overlay.append("c")
    merged.node.resources["fstab"][0]["spec"] = "changed"
    assert profile.system_overlay == ["a"]
    assert home == {"spec": "warewulf:/home"}


def test_merged_node_keeps_identity_and_own_comment_and_node_fields() -> None:
    store = profiles_of(p1=Profile(comment="profile comment", image="img"))
    node = Node(
        name="n1", revision=7, profiles=["p1"], discoverable=True, asset_key="A-1", comment=None
    )
    merged = merge_node(node, store)
    assert (merged.node.name, merged.node.revision) == ("n1", 7)
    assert merged.node.comment is None  # Warewulf: a profile's comment is not inherited
    assert (merged.node.discoverable, merged.node.asset_key) == (True, "A-1")
    assert merged.provenance["asset_key"] == "n1"


def test_merge_profile_layers_its_own_profiles() -> None:
    store = profiles_of(
        base=Profile(image="base", kernel=Kernel(version="6.1")),
        gpu=Profile(profiles=["base"], image="cuda"),
    )
    merged = merge_profile(store["gpu"], store)
    assert merged.profile.name == "gpu"
    assert merged.profile.profiles == ["base"]
    assert merged.profile.image == "cuda"
    assert merged.profile.kernel == Kernel(version="6.1")
    assert merged.provenance == {"image": "gpu", "kernel.version": "base"}


def test_cyclic_profiles_merge_without_hanging() -> None:
    store = {
        "a": Profile(name="a", profiles=["b"], image="a-img"),
        "b": Profile(name="b", profiles=["a"], init="/b-init"),
    }
    merged = merge_node(Node(name="n", profiles=["a"]), store)
    assert merged.node.profiles == ["b", "a"]
    assert (merged.node.image, merged.node.init) == ("a-img", "/b-init")
    assert merge_profile(store["a"], store).profile.profiles == ["b"]
