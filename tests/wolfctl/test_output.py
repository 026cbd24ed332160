"""Tables, JSON and YAML output; secrets masked in tables; provenance in `-a` rows."""

from __future__ import annotations

import time

import msgspec
import yaml

from libs.common.models.api import MergedNode
from libs.common.models.node import IPMI, Kernel, NetDev, Node
from libs.wolfctl.fieldview import FieldLister
from libs.wolfctl.node.list import VIEWS
from libs.wolfctl.output import SECRET, cell, dump, table


def test_table_aligns_columns_and_marks_empty_cells() -> None:
    text = table(("NODE NAME", "PROFILES"), [("n1", "default,gpu"), ("node-long-name", "")])
    assert text.splitlines() == [
        "NODE NAME       PROFILES",
        "---------       --------",
        "n1              default,gpu",
        "node-long-name  --",
    ]


def test_table_has_no_trailing_blanks() -> None:
    text = table(("A", "B", "C"), [("x", "", "")])
    assert all(line == line.rstrip() for line in text.splitlines())


def test_table_of_ten_thousand_rows_is_fast() -> None:
    rows = [(f"n{i:05d}", "default", f"10.0.{i // 250}.{i % 250}") for i in range(10_000)]
    start = time.perf_counter()
    text = table(("NODE NAME", "PROFILES", "NETWORK"), rows)
    assert time.perf_counter() - start < 0.25
    assert text.count("\n") == 10_002


def test_cells() -> None:
    assert cell(None) == cell([]) == ""
    assert cell(True) == "true"
    assert cell(["a", "b"]) == "a,b"
    assert cell("hunter2", secret=True) == SECRET
    assert cell(None, secret=True) == ""  # unset stays visibly unset


def sample() -> Node:
    return Node(
        name="n01",
        profiles=["default"],
        image="rocky9",
        kernel=Kernel(args=["quiet"]),
        network_devices={"default": NetDev(ipaddr="10.0.0.1", hwaddr="aa:bb:cc:dd:ee:ff")},
        ipmi=IPMI(username="admin", password="hunter2"),
        tags={"rack": "r1"},
        revision=3,
    )


def test_json_and_yaml_print_the_objects_secrets_included() -> None:
    nodes = [sample()]
    assert msgspec.json.decode(dump(nodes, "json"), type=list[Node]) == nodes
    loaded = yaml.safe_load(dump(nodes, "yaml"))
    assert msgspec.convert(loaded, list[Node]) == nodes
    assert loaded[0]["ipmi"]["password"] == "hunter2"


def test_all_fields_with_sources_and_secrets_masked() -> None:
    merged = MergedNode(
        node=sample(),
        provenance={
            "image": "default",
            "kernel.args": ["default"],
            "network_devices.default.ipaddr": "n01",
            "network_devices.default": "n01",
            "ipmi.password": "n01",
            "tags.rack": "rackprofile",
        },
    )
    rows = {
        field: (source, value)
        for field, source, value in FieldLister().rows(merged.node, merged.provenance)
    }
    assert rows["image"] == ("default", "rocky9")
    assert rows["kernel.args"] == ("default", "quiet")
    assert rows["network_devices.default.ipaddr"] == ("n01", "10.0.0.1")
    # A path without its own entry takes its parent's source.
    assert rows["network_devices.default.hwaddr"] == ("n01", "aa:bb:cc:dd:ee:ff")
    assert rows["ipmi.password"] == ("n01", SECRET)
    assert rows["tags.rack"] == ("rackprofile", "r1")
    # Unset fields are listed too, without a source.
    assert rows["comment"] == ("", "")
    assert rows["kernel.version"] == ("", "")
    assert "name" not in rows and "revision" not in rows
    text = table(VIEWS["all"].headers, VIEWS["all"].rows([merged]))
    assert "hunter2" not in text and SECRET in text


def test_node_views() -> None:
    node = sample()
    merged = [MergedNode(node=node, provenance={})]
    assert list(VIEWS["summary"].rows([node])) == [("n01", "default", "10.0.0.1")]
    assert list(VIEWS["long"].rows(merged)) == [("n01", "", "rocky9", "/")]
    assert list(VIEWS["net"].rows(merged)) == [
        ("n01", "default", "aa:bb:cc:dd:ee:ff", "10.0.0.1", "", "")
    ]
    assert list(VIEWS["ipmi"].rows(merged)) == [("n01", "", "", "admin", "")]
