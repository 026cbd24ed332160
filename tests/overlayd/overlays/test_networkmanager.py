"""Overlay NetworkManager: one keyfile per network device (0600), read back with configparser
the way NetworkManager's keyfile plugin reads them (INI groups and keys)."""

from __future__ import annotations

import configparser

import pytest

from libs.common.models.node import NetDev, Node
from services.overlayd.engine.errors import RenderError
from tests.overlayd.overlays.helpers import Cluster, four_nic_node

FOLDER = "etc/NetworkManager/system-connections"


def keyfiles(node: Node) -> dict[str, dict[str, dict[str, str]]]:
    files = Cluster(nodes=[node]).render("NetworkManager", node.name)
    found: dict[str, dict[str, dict[str, str]]] = {}
    for path, out in files.items():
        if path.startswith(FOLDER + "/"):
            assert out.mode == 0o600, f"{path}: NetworkManager ignores a keyfile others can read"
            parser = configparser.ConfigParser(interpolation=None, strict=True)
            parser.optionxform = str  # type: ignore[assignment,method-assign]
            parser.read_string(out.text)
            name = path.removeprefix(FOLDER + "/")
            found[name] = {section: dict(parser[section]) for section in parser.sections()}
    return found


def test_a_keyfile_per_device() -> None:
    node = four_nic_node()
    node.network_devices["default"].tags = {
        "DNS1": "10.0.0.2",
        "dns2": "10.0.0.3",
        "DNSSEARCH": "hpc.example; example.org",
        "route1": "192.168.0.0/16,10.0.0.254",
    }
    found = keyfiles(node)
    assert sorted(found) == [
        f"{name}.nmconnection"
        for name in ("bond", "bondm1", "bondm2", "default", "ib", "spare", "storage")
    ]
    assert found["default.nmconnection"] == {
        "connection": {
            "id": "default",
            "interface-name": "eth0",
            "type": "ethernet",
            "autoconnect": "true",
        },
        "ethernet": {"mac-address": "aa:bb:cc:00:00:01", "mtu": "9000"},
        "ipv4": {
            "method": "manual",
            "address1": "10.0.0.11/24",
            "gateway": "10.0.0.1",
            "route1": "192.168.0.0/16,10.0.0.254",
            "dns": "10.0.0.2;10.0.0.3;",
            "dns-search": "hpc.example;example.org;",
        },
        "ipv6": {
            "addr-gen-mode": "eui64",
            "method": "manual",
            "address1": "fd00::11/64",
            "gateway": "fd00::1",
        },
    }


def test_infiniband() -> None:
    ib = keyfiles(four_nic_node())["ib.nmconnection"]
    assert ib["connection"]["type"] == "infiniband"
    assert ib["connection"]["interface-name"] == "ib0"
    assert ib["infiniband"] == {"transport-mode": "datagram", "mtu": "4092"}
    assert "ethernet" not in ib
    assert ib["ipv4"] == {"method": "manual", "address1": "10.10.0.11/16"}
    assert ib["ipv6"]["method"] == "disabled"


def test_bond_and_its_members() -> None:
    found = keyfiles(four_nic_node())
    bond = found["bond.nmconnection"]
    assert bond["connection"]["type"] == "bond"
    assert bond["connection"]["interface-name"] == "bond0"
    assert bond["bond"] == {"mode": "802.3ad", "miimon": "200"}
    assert bond["ipv4"] == {"method": "manual", "address1": "10.20.0.11/24"}
    for member, mac in (("bondm1", "aa:bb:cc:00:00:02"), ("bondm2", "aa:bb:cc:00:00:03")):
        keyfile = found[f"{member}.nmconnection"]
        assert keyfile["connection"]["master"] == "bond0"
        assert keyfile["connection"]["slave-type"] == "bond"
        assert keyfile["ethernet"] == {"mac-address": mac}
        assert keyfile["ipv4"] == {"method": "disabled"}
        assert keyfile["ipv6"] == {"method": "disabled"}


def test_vlan_on_the_bond() -> None:
    vlan = keyfiles(four_nic_node())["storage.nmconnection"]
    assert vlan["connection"]["type"] == "vlan"
    assert vlan["connection"]["interface-name"] == "bond0.42"
    assert vlan["vlan"] == {"parent": "bond0", "id": "42"}
    assert vlan["ipv4"]["address1"] == "10.42.0.11/24"


def test_onboot_false_is_not_autoconnected() -> None:
    found = keyfiles(four_nic_node())
    assert found["spare.nmconnection"]["connection"]["autoconnect"] == "false"
    assert {
        f["connection"]["autoconnect"] for n, f in found.items() if n != "spare.nmconnection"
    } == {"true"}


def test_a_vlan_without_its_tags_fails_with_a_message() -> None:
    node = Node(name="n09", network_devices={"v": NetDev(type="vlan", device="eth0.5")})
    with pytest.raises(RenderError, match="network v of node n09: a vlan needs the tags vlan_id"):
        keyfiles(node)


def test_only_the_nodes_devices_are_managed() -> None:
    files = Cluster(nodes=[four_nic_node()]).render("NetworkManager", "n01")
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(files["etc/NetworkManager/conf.d/wolfpack.conf"].text)
    unmanaged = parser["keyfile"]["unmanaged-devices"].split(",")
    assert "except:mac:aa:bb:cc:00:00:01" in unmanaged
    assert "except:interface-name:bond0.42" in unmanaged
    assert parser["device"]["keep-configuration"] == "no"


def test_a_node_without_devices_gets_no_keyfile() -> None:
    files = Cluster(nodes=[Node(name="n09")]).render("NetworkManager", "n09")
    assert not [path for path in files if path.startswith(FOLDER + "/")]


def test_a_nic_without_a_device_name_is_bound_by_its_mac() -> None:
    node = Node(name="n09", network_devices={"default": NetDev(hwaddr="AA:BB:CC:00:00:09")})
    keyfile = keyfiles(node)["default.nmconnection"]
    assert "interface-name" not in keyfile["connection"]
    assert keyfile["ethernet"] == {"mac-address": "aa:bb:cc:00:00:09"}
