"""Overlay systemd.networkd: a .network per device, a .netdev per bond and VLAN."""

from __future__ import annotations

from libs.common.models.node import NetDev, Node
from tests.overlayd.overlays.helpers import Cluster, four_nic_node, unit_sections

FOLDER = "etc/systemd/network"


def units() -> dict[str, list[tuple[str, list[tuple[str, str]]]]]:
    node = four_nic_node()
    node.network_devices["default"].tags = {
        "DNS1": "10.0.0.2",
        "DNSSEARCH": "hpc.example",
        "route1": "192.168.0.0/16,10.0.0.254",
    }
    files = Cluster(nodes=[node]).render("systemd.networkd", "n01")
    return {
        path.removeprefix(FOLDER + "/"): unit_sections(out.text)
        for path, out in files.items()
        if path.startswith(FOLDER + "/")
    }


def test_files() -> None:
    assert sorted(units()) == [
        "20-bond0.42.netdev",
        "20-bond0.42.network",
        "20-bond0.netdev",
        "20-bond0.network",
        "20-eth0.network",
        "20-eth1.network",
        "20-eth2.network",
        "20-eth3.network",
        "20-ib0.network",
    ]


def test_ethernet_with_ipv6_mtu_routes_dns() -> None:
    assert units()["20-eth0.network"] == [
        ("Match", [("Name", "eth0"), ("MACAddress", "aa:bb:cc:00:00:01")]),
        ("Link", [("MTUBytes", "9000")]),
        (
            "Network",
            [
                ("DHCP", "no"),
                ("Address", "10.0.0.11/24"),
                ("Gateway", "10.0.0.1"),
                ("IPv6AcceptRA", "no"),
                ("Address", "fd00::11/64"),
                ("Gateway", "fd00::1"),
                ("DNS", "10.0.0.2"),
                ("Domains", "hpc.example"),
            ],
        ),
        ("Route", [("Destination", "192.168.0.0/16"), ("Gateway", "10.0.0.254")]),
    ]


def test_bond_members_vlan_infiniband_onboot() -> None:
    found = units()
    assert found["20-bond0.netdev"] == [
        ("NetDev", [("Name", "bond0"), ("Kind", "bond")]),
        ("Bond", [("Mode", "802.3ad"), ("MIIMonitorSec", "200ms")]),
    ]
    # The VLAN hangs off its parent's .network.
    assert found["20-bond0.network"] == [
        ("Match", [("Name", "bond0")]),
        ("Network", [("DHCP", "no"), ("Address", "10.20.0.11/24"), ("VLAN", "bond0.42")]),
    ]
    assert found["20-eth1.network"] == [
        ("Match", [("Name", "eth1"), ("MACAddress", "aa:bb:cc:00:00:02")]),
        ("Network", [("Bond", "bond0")]),
    ]
    assert found["20-bond0.42.netdev"] == [
        ("NetDev", [("Name", "bond0.42"), ("Kind", "vlan")]),
        ("VLAN", [("Id", "42")]),
    ]
    assert found["20-ib0.network"][0] == ("Match", [("Name", "ib0")])  # no 20-byte MAC match
    assert ("Link", [("MTUBytes", "4092")]) in found["20-ib0.network"]
    assert ("Link", [("ActivationPolicy", "manual")]) in found["20-eth3.network"]


def test_a_nic_without_a_device_name_is_matched_by_its_mac() -> None:
    node = Node(
        name="n09",
        network_devices={
            "default": NetDev(hwaddr="aa:bb:cc:00:00:09", ipaddr="10.0.0.9"),
            "lost": NetDev(ipaddr="10.9.0.9"),  # neither name nor MAC: nothing to match it by
        },
    )
    files = Cluster(nodes=[node]).render("systemd.networkd", "n09")
    found = {p: f for p, f in files.items() if p.startswith(FOLDER + "/")}
    assert list(found) == [f"{FOLDER}/20-default.network"]
    sections = unit_sections(found[f"{FOLDER}/20-default.network"].text)
    assert sections[0] == ("Match", [("MACAddress", "aa:bb:cc:00:00:09")])
