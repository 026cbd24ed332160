"""Overlay resolv: /etc/resolv.conf from the DNS tags (Warewulf's names)."""

from __future__ import annotations

from tests.overlayd.overlays.helpers import Cluster, four_nic_node


def directives(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_servers_and_domains_from_node_and_device_tags() -> None:
    node = four_nic_node(tags={"DNS": "10.0.0.2", "DNSSEARCH": "hpc.example"})
    node.network_devices["default"].tags = {
        "DNS1": "10.0.0.3",
        "dns2": "10.0.0.2",  # already listed: once only
        "DNSSEARCH": "example.org;hpc.example",
    }
    node.network_devices["ib"].tags = {"DNS1": "10.10.0.1", "DNSX": "not a server"}
    text = Cluster(nodes=[node]).render("resolv", "n01")["etc/resolv.conf"].text
    assert directives(text) == [
        "search hpc.example example.org",
        "nameserver 10.0.0.2",
        "nameserver 10.0.0.3",
        "nameserver 10.10.0.1",
    ]


def test_no_tags_no_directives() -> None:
    text = Cluster(nodes=[four_nic_node()]).render("resolv", "n01")["etc/resolv.conf"].text
    assert directives(text) == []
