"""Overlay ifupdown: /etc/network/interfaces sourcing one stanza file per device."""

from __future__ import annotations

from libs.common.models.node import NetDev, Node
from tests.overlayd.overlays.helpers import Cluster, four_nic_node

FOLDER = "etc/network/interfaces.d"


def stanzas() -> dict[str, list[str]]:
    node = four_nic_node()
    node.network_devices["default"].tags = {
        "DNS1": "10.0.0.2",
        "DNSSEARCH": "hpc.example",
        "route1": "192.168.0.0/16,10.0.0.254",
    }
    files = Cluster(nodes=[node]).render("ifupdown", "n01")
    return {
        path.removeprefix(FOLDER + "/"): [
            line.strip() for line in out.text.splitlines() if line.strip() and line[0] != "#"
        ]
        for path, out in files.items()
        if path.startswith(FOLDER + "/")
    }


def test_interfaces_sources_the_stanzas() -> None:
    files = Cluster(nodes=[four_nic_node()]).render("ifupdown", "n01")
    lines = files["etc/network/interfaces"].text.splitlines()
    assert "source /etc/network/interfaces.d/*" in lines
    assert lines[-2:] == ["auto lo", "iface lo inet loopback"]


def test_ethernet_with_ipv6_mtu_routes_dns() -> None:
    assert stanzas()["eth0"] == [
        "auto eth0",
        "allow-hotplug eth0",
        "iface eth0 inet static",
        "address 10.0.0.11/24",
        "gateway 10.0.0.1",
        "mtu 9000",
        "up ip route add 192.168.0.0/16 via 10.0.0.254 dev eth0",
        "dns-nameservers 10.0.0.2",
        "dns-search hpc.example",
        "iface eth0 inet6 static",
        "address fd00::11/64",
        "gateway fd00::1",
    ]


def test_infiniband_bond_vlan_and_onboot_false() -> None:
    found = stanzas()
    assert sorted(found) == ["bond0", "bond0.42", "eth0", "eth1", "eth2", "eth3", "ib0"]
    assert found["ib0"] == [
        "auto ib0",
        "allow-hotplug ib0",
        "iface ib0 inet static",
        "address 10.10.0.11/16",
        "mtu 4092",
    ]
    assert found["bond0"] == [
        "auto bond0",
        "iface bond0 inet static",
        "address 10.20.0.11/24",
        "bond-slaves eth1 eth2",
        "bond-mode 802.3ad",
        "bond-miimon 200",
    ]
    assert found["eth1"] == found["eth2"] == []  # members: the bond brings them up
    assert found["bond0.42"] == [
        "auto bond0.42",
        "iface bond0.42 inet static",
        "address 10.42.0.11/24",
        "vlan-raw-device bond0",
    ]
    assert found["eth3"] == ["iface eth3 inet static", "address 10.30.0.11/24"]  # not auto


def test_a_nic_without_a_device_name_gets_no_stanza() -> None:
    # ifupdown knows interfaces by name only.
    node = Node(name="n09", network_devices={"default": NetDev(hwaddr="aa:bb:cc:00:00:09")})
    files = Cluster(nodes=[node]).render("ifupdown", "n09")
    assert not [path for path in files if path.startswith(FOLDER + "/")]
