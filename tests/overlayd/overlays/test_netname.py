"""Overlays udev.netname and systemd.netname: NICs named by MAC."""

from __future__ import annotations

from libs.common.models.node import Node
from tests.overlayd.overlays.helpers import Cluster, four_nic_node, unit_sections


def test_udev_rules() -> None:
    files = Cluster(nodes=[four_nic_node()]).render("udev.netname", "n01")
    rules = [
        line
        for line in files["etc/udev/rules.d/70-persistent-net.rules"].text.splitlines()
        if line and not line.startswith("#")
    ]
    common = 'SUBSYSTEM=="net", ACTION=="add", DRIVERS=="?*", '
    ib = "80:00:00:48:fe:80:00:00:00:00:00:00:00:11:22:33:44:55:66:77"
    assert rules == [  # networks in name order; bond and VLAN have no rule
        common + 'ATTR{address}=="aa:bb:cc:00:00:02", NAME="eth1"',
        common + 'ATTR{address}=="aa:bb:cc:00:00:03", NAME="eth2"',
        common + 'ATTR{address}=="aa:bb:cc:00:00:01", NAME="eth0"',
        common + f'ATTR{{address}}=="*{ib}", NAME="ib0"',
        common + 'ATTR{address}=="aa:bb:cc:00:00:04", NAME="eth3"',
    ]


def test_systemd_link_files() -> None:
    files = Cluster(nodes=[four_nic_node()]).render("systemd.netname", "n01")
    links = {p: unit_sections(f.text) for p, f in files.items() if p.endswith(".link")}
    assert sorted(links) == [
        f"etc/systemd/network/10-{device}.link" for device in ("eth0", "eth1", "eth2", "eth3")
    ]
    assert links["etc/systemd/network/10-eth0.link"] == [
        ("Match", [("MACAddress", "aa:bb:cc:00:00:01")]),
        ("Link", [("Name", "eth0")]),
    ]


def test_nothing_to_name() -> None:
    files = Cluster(nodes=[Node(name="n09")]).render("systemd.netname", "n09")
    assert not [p for p in files if p.endswith(".link")]
