"""Warewulf 4 nodes.conf import and export: every field survives, old spellings still load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from libs.common.errors import Invalid
from libs.common.models.node import (
    MODEL_PARTS,
    Disk,
    Kernel,
    NetDev,
    Node,
    Partition,
    Profile,
    ProfileFields,
)
from libs.common.nodes.merge import merge_node
from libs.common.nodes.nodesconf import dump_nodes_conf, load_nodes_conf
from libs.common.nodes.validate import validate_node, validate_profile

SOURCE = (Path(__file__).parent / "data" / "nodes.conf").read_text()


def as_written(text: str) -> Any:
    """The YAML as plain text values: no YAML 1.1 guessing, so spellings compare exactly."""
    return yaml.load(text, Loader=yaml.BaseLoader)


def test_realistic_file_round_trips() -> None:
    profiles, nodes = load_nodes_conf(SOURCE)
    assert list(profiles) == ["default", "compute", "gpu", "infiniband"]
    assert list(nodes) == ["n001", "n002", "n003"]
    text = dump_nodes_conf(profiles, nodes)
    assert load_nodes_conf(text) == (profiles, nodes)


def test_export_says_what_the_source_says() -> None:
    """Compared key by key with the source read by PyYAML: a field the loader drops shows."""
    profiles, nodes = load_nodes_conf(SOURCE)
    assert as_written(dump_nodes_conf(profiles, nodes)) == as_written(SOURCE)


def _set_fields(value: Any, seen: set[tuple[str, str]]) -> None:
    if isinstance(value, msgspec.Struct):
        for name in value.__struct_fields__:
            item = getattr(value, name)
            if item is not None and item != [] and item != {}:
                seen.add((type(value).__name__, name))
            _set_fields(item, seen)
    elif isinstance(value, dict):
        for item in value.values():
            _set_fields(item, seen)


def test_realistic_file_sets_every_model_field() -> None:
    """So the round trip above covers each field (a new model field must join the file)."""
    profiles, nodes = load_nodes_conf(SOURCE)
    seen: set[tuple[str, str]] = set()
    for obj in [*profiles.values(), *nodes.values()]:
        _set_fields(obj, seen)
    # Node and Profile share ProfileFields: a shared field seen on either counts once.
    shared = set(ProfileFields.__struct_fields__)
    seen |= {("ProfileFields", f) for cls, f in seen if cls in ("Node", "Profile")}
    wanted = {
        (cls.__name__, name)
        for cls in MODEL_PARTS
        for name in cls.__struct_fields__
        if name != "revision" and not (cls in (Node, Profile) and name in shared)
    }
    assert wanted - seen == set()


def test_values_are_typed_as_the_model_says() -> None:
    profiles, nodes = load_nodes_conf(SOURCE)
    n001 = nodes["n001"]
    default = n001.network_devices["default"]
    assert default.hwaddr == "52:54:00:10:00:11"  # YAML 1.1 would read a base-60 number
    assert (default.mtu, default.prefixlen6, default.ipaddr6) == (9000, 64, "fd00:10::11")
    assert n001.network_devices["ib"].onboot is True
    assert n001.ipmi is not None
    assert (n001.ipmi.password, n001.ipmi.write, n001.ipmi.tags) == (
        "s3cr3t!",
        True,
        {"bit-rate": "115.2"},
    )
    assert n001.disks["/dev/vda"] == Disk(
        wipe_table=True,
        partitions={
            "scratch": Partition(
                number=1,
                size_mib=0,
                start_mib=1,
                type_guid="0fc63daf-8483-4772-8e79-3d69d8477de4",
                guid="6a1b2c3d-0000-4000-8000-000000000001",
                wipe_partition_entry=False,
                should_exist=True,
                resize=True,
            ),
            "swap": Partition(
                number=2,
                size_mib=4096,
                type_guid="0657fd6d-a4ab-43c4-84e5-0933c84b4f4f",
                should_exist=True,
            ),
        },
    )
    assert n001.asset_key == "ASSET-0001"
    assert nodes["n003"].discoverable is True
    assert profiles["default"].ipmi is not None
    assert profiles["default"].ipmi.escapechar == "~"
    assert profiles["default"].network_devices["default"].onboot is True
    assert profiles["gpu"].kernel == Kernel(args=["~quiet", "rd.driver.blacklist=nouveau"])
    for node in nodes.values():
        assert validate_node(node) == node
    for profile in profiles.values():
        assert validate_profile(profile) == profile


def test_realistic_file_merges_as_warewulf_would() -> None:
    profiles, nodes = load_nodes_conf(SOURCE)
    merged = merge_node(nodes["n002"], profiles)
    assert merged.node.profiles == ["default", "compute", "gpu", "infiniband"]
    assert merged.node.image == "rockylinux-9-cuda"
    assert merged.node.kernel is not None
    assert merged.node.kernel.args == [
        "crashkernel=no",
        "net.ifnames=1",
        "console=ttyS0,115200",
        "rd.driver.blacklist=nouveau",
        "nvidia-drm.modeset=1",
    ]
    assert "issue" not in merged.node.system_overlay
    assert merged.node.runtime_overlay == ["hosts", "ssh.authorized_keys"]
    assert len(merged.node.resources["fstab"]) == 3
    assert merged.provenance["network_devices.ib.mtu"] == "infiniband"


def test_numbers_are_written_as_quoted_strings() -> None:
    profiles, nodes = load_nodes_conf(SOURCE)
    written = yaml.safe_load(dump_nodes_conf(profiles, nodes))
    dev = written["nodes"]["n001"]["network devices"]["default"]
    assert (dev["mtu"], dev["prefixlen6"]) == ("9000", "64")
    part = written["nodes"]["n001"]["disks"]["/dev/vda"]["partitions"]["swap"]
    assert (part["number"], part["size_mib"]) == ("2", "4096")


def test_numbers_and_booleans_load_from_either_spelling() -> None:
    text = """
nodes:
  n1:
    discoverable: yes
    network devices:
      default:
        mtu: 1500
        prefixlen6: "64"
        onboot: "no"
    ipmi:
      write: "True"
      port: 623
"""
    _, nodes = load_nodes_conf(text)
    dev = nodes["n1"].network_devices["default"]
    assert (dev.mtu, dev.prefixlen6, dev.onboot) == (1500, 64, False)
    assert nodes["n1"].discoverable is True
    assert nodes["n1"].ipmi is not None
    assert (nodes["n1"].ipmi.write, nodes["n1"].ipmi.port) == (True, "623")


def test_older_spellings_load() -> None:
    text = """
WW_INTERNAL: 45
nodeprofiles:
  default:
    container name: rocky-8
    kernel:
      version: "4.18"
      override: 4.18.0-513.el8.x86_64
      args: quiet crashkernel=no  net.ifnames=1
nodes:
  n1:
    image name: rocky-9
    container name: rocky-8
    network devices:
      default:
"""
    profiles, nodes = load_nodes_conf(text)
    assert profiles["default"].image == "rocky-8"
    assert profiles["default"].kernel == Kernel(
        version="4.18.0-513.el8.x86_64", args=["quiet", "crashkernel=no", "net.ifnames=1"]
    )
    assert nodes["n1"].image == "rocky-9"  # the newer key wins
    assert nodes["n1"].network_devices == {"default": NetDev()}


def test_empty_documents_load_as_nothing() -> None:
    assert load_nodes_conf("") == ({}, {})
    assert load_nodes_conf("nodeprofiles: {}\nnodes: {}\n") == ({}, {})
    assert load_nodes_conf("nodes:\n") == ({}, {})


@pytest.mark.parametrize(
    ("text", "field", "hint"),
    [
        ("nodes:\n  n1:\n    colour: red\n", "nodes.n1.colour", "colour"),
        (
            "nodes:\n  n1:\n    network devices:\n      default:\n        primary: true\n",
            "nodes.n1.network devices.default.primary",
            "primary",
        ),
        (
            "nodeprofiles:\n  p:\n    disks:\n      /dev/sda:\n        partitions:\n"
            "          a:\n            sizemib: '1'\n",
            "nodeprofiles.p.disks./dev/sda.partitions.a.sizemib",
            "sizemib",
        ),
        ("hosts: {}\n", "hosts", "hosts"),
        (
            "nodes:\n  n1:\n    network devices:\n      d:\n        mtu: big\n",
            "nodes.n1.network devices.d.mtu",
            "big",
        ),
        ("nodes:\n  n1:\n    discoverable: maybe\n", "nodes.n1.discoverable", "maybe"),
        ("nodes:\n  n1:\n    system overlay: wwinit\n", "nodes.n1.system overlay", "list"),
        ("nodes:\n  n1:\n    tags: [a, b]\n", "nodes.n1.tags", "mapping"),
        ("nodes:\n  n1:\n    image name: a\n    image name: b\n", "nodes.n1.image name", "twice"),
        ("nodes: [n1]\n", "nodes", "mapping"),
        ("nodes:\n  n1: {\n", "nodes.conf", "YAML"),
        ("- a\n", "nodes.conf", "mapping"),
    ],
)
def test_bad_files_are_invalid_naming_the_key_path(text: str, field: str, hint: str) -> None:
    with pytest.raises(Invalid) as exc:
        load_nodes_conf(text)
    assert exc.value.field == field
    assert hint in exc.value.message


TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12)
WEIRD = st.sampled_from(["yes", "no", "~", "null", "1.10", "0x10", "010", "1:20", "", " a "])
STRINGS = WEIRD | TEXT


@given(
    image=st.none() | STRINGS,
    args=st.lists(STRINGS, max_size=4),
    tags=st.dictionaries(STRINGS, STRINGS, max_size=4),
    mtu=st.none() | st.integers(0, 10**6),
    onboot=st.none() | st.booleans(),
    resources=st.dictionaries(
        STRINGS,
        st.recursive(
            st.none() | st.booleans() | st.integers() | STRINGS,
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(STRINGS, inner, max_size=3),
            max_leaves=6,
        ),
        max_size=3,
    ),
)
def test_any_values_round_trip(
    image: str | None,
    args: list[str],
    tags: dict[str, str],
    mtu: int | None,
    onboot: bool | None,
    resources: dict[str, Any],
) -> None:
    node = Node(
        name="n1",
        image=image,
        kernel=Kernel(args=args),
        tags=tags,
        network_devices={"default": NetDev(mtu=mtu, onboot=onboot, tags=tags)},
        resources=resources,
    )
    profile = Profile(name="p", tags=tags)
    assert load_nodes_conf(dump_nodes_conf({"p": profile}, {"n1": node})) == (
        {"p": profile},
        {"n1": node},
    )
