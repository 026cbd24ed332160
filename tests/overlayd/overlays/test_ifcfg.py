"""Overlay ifcfg: Red Hat interface files, one per device, read as KEY=value."""

from __future__ import annotations

from libs.common.models.node import NetDev, Node
from tests.overlayd.overlays.helpers import Cluster, Output, four_nic_node, key_value

FOLDER = "etc/sysconfig/network-scripts"


def files() -> dict[str, Output]:
    node = four_nic_node()
    node.network_devices["default"].tags = {
        "DNS1": "10.0.0.2",
        "DNSSEARCH": "hpc.example;example.org",
        "route1": "192.168.0.0/16,10.0.0.254",
    }
    found = Cluster(nodes=[node]).render("ifcfg", "n01")
    return {p.removeprefix(FOLDER + "/"): f for p, f in found.items() if f.kind == "file"}


def rendered() -> dict[str, dict[str, str]]:
    return {p: key_value(f.text) for p, f in files().items() if not p.startswith("route-")}


def test_one_file_per_device_named_after_it() -> None:
    found = rendered()
    assert sorted(files()) == [
        "etc/sysconfig/network",
        "ifcfg-bond0",
        "ifcfg-bond0.42",
        "ifcfg-eth0",
        "ifcfg-eth1",
        "ifcfg-eth2",
        "ifcfg-eth3",
        "ifcfg-ib0",
        "route-eth0",  # for the route tag
    ]
    assert found["etc/sysconfig/network"] == {"NETWORKING": "yes", "HOSTNAME": "n01"}


def test_ethernet_with_ipv6_mtu_dns() -> None:
    assert rendered()["ifcfg-eth0"] == {
        "DEVICE": "eth0",
        "NAME": "default",
        "TYPE": "Ethernet",
        "ONBOOT": "yes",
        "BOOTPROTO": "static",
        "DEVTIMEOUT": "10",
        "HWADDR": "aa:bb:cc:00:00:01",
        "MTU": "9000",
        "IPADDR": "10.0.0.11",
        "NETMASK": "255.255.255.0",
        "GATEWAY": "10.0.0.1",
        "IPV6INIT": "yes",
        "IPV6_AUTOCONF": "no",
        "IPV6ADDR": "fd00::11/64",
        "IPV6_DEFAULTGW": "fd00::1",
        "DNS1": "10.0.0.2",
        "DOMAIN": "hpc.example example.org",
    }


def test_routes() -> None:
    lines = files()["route-eth0"].text.splitlines()
    assert [line for line in lines if not line.startswith("#")] == [
        "192.168.0.0/16 via 10.0.0.254 dev eth0"
    ]
    plain = Cluster(nodes=[four_nic_node()]).render("ifcfg", "n01")
    assert not [path for path in plain if "/route-" in path]  # no route tags, no route file


def test_infiniband_bond_members_vlan_and_onboot() -> None:
    found = rendered()
    ib = found["ifcfg-ib0"]
    assert (ib["TYPE"], ib["CONNECTED_MODE"], ib["MTU"]) == ("InfiniBand", "no", "4092")
    assert (ib["IPADDR"], ib["NETMASK"]) == ("10.10.0.11", "255.255.0.0")
    bond = found["ifcfg-bond0"]
    assert bond["TYPE"] == "Bond"
    assert bond["BONDING_MASTER"] == "yes"
    assert bond["BONDING_OPTS"] == "mode=802.3ad miimon=200"
    assert "HWADDR" not in bond
    for member in ("ifcfg-eth1", "ifcfg-eth2"):
        assert found[member]["MASTER"] == "bond0"
        assert found[member]["SLAVE"] == "yes"
        assert found[member]["BOOTPROTO"] == "none"
        assert "IPADDR" not in found[member]
    vlan = found["ifcfg-bond0.42"]
    assert (vlan["VLAN"], vlan["PHYSDEV"], vlan["VLAN_ID"]) == ("yes", "bond0", "42")
    assert vlan["DEVICE"] == "bond0.42"
    assert found["ifcfg-eth3"]["ONBOOT"] == "no"
    assert {
        f["ONBOOT"] for n, f in found.items() if n.startswith("ifcfg-") and n != "ifcfg-eth3"
    } == {"yes"}


def test_a_nic_without_a_device_name_is_bound_by_hwaddr() -> None:
    node = Node(name="n09", network_devices={"default": NetDev(hwaddr="aa:bb:cc:00:00:09")})
    files = Cluster(nodes=[node]).render("ifcfg", "n09")
    found = key_value(files[f"{FOLDER}/ifcfg-default"].text)
    assert "DEVICE" not in found
    assert found["HWADDR"] == "aa:bb:cc:00:00:09"
