"""Tables, JSON and YAML output; secrets masked in tables; provenance in `-a` rows."""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import yaml

from libs.common.models.api import MergedNode
from libs.common.models.node import IPMI, Kernel, NetDev, Node
from libs.wolfctl.fieldview import FieldLister
from libs.wolfctl.node.list import VIEWS
from libs.wolfctl.output import SECRET, cell, dump, table
from tests.scaling import growth


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


HEADERS = ("NODE NAME", "PROFILES", "NETWORK")


def node_rows(count: int) -> list[tuple[str, str, str]]:
    return [(f"n{i:05d}", "default", f"10.0.{i // 250}.{i % 250}") for i in range(count)]


def test_a_table_of_ten_thousand_rows_has_them_all() -> None:
    lines = table(HEADERS, node_rows(10_000)).splitlines()
    assert len(lines) == 10_002
    assert lines[-1].split() == ["n09999", "default", "10.0.39.249"]


def test_a_table_grows_linearly_with_its_rows() -> None:
    # Ten times the rows: about ten times the work if linear, a hundred if quadratic. How fast
    # `wolfctl node list` is, is measured by bench/registry.py.
    def render(count: int) -> Callable[[], object]:
        rows = node_rows(count)
        return lambda: table(HEADERS, rows)

    assert growth(render, 1_000, 10_000) < 30


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
