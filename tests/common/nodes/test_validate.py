"""Validation of nodes and profiles: each bad input is refused naming its field and value."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from libs.common.errors import Conflict, Invalid
from libs.common.models.node import IPMI, Disk, Kernel, NetDev, Node, Partition, Profile
from libs.common.nodes.macs import normalize_mac
from libs.common.nodes.validate import (
    AddressIndex,
    check_no_cycle,
    check_profiles_exist,
    check_unique_addresses,
    validate_name,
    validate_node,
    validate_profile,
)
from tests.scaling import growth


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("52:54:00:AB:cd:01", "52:54:00:ab:cd:01"),
        ("52-54-00-ab-CD-01", "52:54:00:ab:cd:01"),
        (" 52:54:00:ab:cd:01 ", "52:54:00:ab:cd:01"),
        ("00:11:22:33:44:55:66:77", "00:11:22:33:44:55:66:77"),
        ("80:00:02:08:FE:80:00:00:00:00:00:00:0c:42:a1:03:00:6b:2d:41", None),
    ],
)
def test_normalize_mac_accepts_common_spellings(given: str, expected: str | None) -> None:
    assert normalize_mac(given) == (expected or given.lower())


@pytest.mark.parametrize(
    "bad", ["", "52:54:00:ab:cd", "52:54:00:ab:cd:zz", "5254.00ab.cd01", "1:2:3:4:5:6"]
)
def test_normalize_mac_refuses_garbage(bad: str) -> None:
    with pytest.raises(Invalid) as exc:
        normalize_mac(bad)
    assert exc.value.field == "hwaddr"
    assert repr(bad) in exc.value.message


@pytest.mark.parametrize("good", ["n1", "node-001", "A", "x" * 63, "0gpu"])
def test_validate_name_accepts_labels(good: str) -> None:
    assert validate_name(good) == good


@pytest.mark.parametrize("bad", ["", "-n1", "n1-", "n_1", "n.1", "x" * 64, "n 1", "ñ"])
def test_validate_name_refuses_non_labels(bad: str) -> None:
    with pytest.raises(Invalid) as exc:
        validate_name(bad, field="names")
    assert exc.value.field == "names"
    assert repr(bad) in exc.value.message


def test_validate_node_returns_a_normalized_copy() -> None:
    node = Node(
        name="n1",
        network_devices={
            "default": NetDev(
                hwaddr="52-54-00-AB-CD-01",
                ipaddr="10.0.0.1",
                netmask="255.255.255.0",
                gateway="10.0.0.254",
                ipaddr6="FD00:0:0:0::1",
                gateway6="fd00::fe",
                prefixlen6=64,
                mtu=9216,
            ),
            "eth0.100": NetDev(device="eth0.100", mtu=65535),
        },
        ipmi=IPMI(ipaddr="10.1.0.1", netmask="255.255.0.0", gateway="10.1.0.254"),
        profiles=["default", "~gpu"],
        kernel=Kernel(args=["quiet"]),
    )
    checked = validate_node(node)
    dev = checked.network_devices["default"]
    assert dev.hwaddr == "52:54:00:ab:cd:01"
    assert dev.ipaddr6 == "fd00::1"
    assert checked.ipmi == node.ipmi
    assert node.network_devices["default"].hwaddr == "52-54-00-AB-CD-01"  # input untouched


BAD_NODES: list[tuple[Node, str, str]] = [
    (Node(name="-bad"), "name", "-bad"),
    (Node(profiles=["ok", "no_good"]), "profiles", "no_good"),
    (Node(profiles=["~bad!"]), "profiles", "bad!"),
    (Node(network_devices={"d": NetDev(hwaddr="zz")}), "network_devices.d.hwaddr", "zz"),
    (
        Node(network_devices={"d": NetDev(ipaddr="10.0.0.256")}),
        "network_devices.d.ipaddr",
        "10.0.0.256",
    ),
    (
        Node(network_devices={"d": NetDev(ipaddr="fd00::1")}),
        "network_devices.d.ipaddr",
        "fd00::1",
    ),
    (
        Node(network_devices={"d": NetDev(gateway="gw")}),
        "network_devices.d.gateway",
        "gw",
    ),
    (
        Node(network_devices={"d": NetDev(netmask="255.0.255.0")}),
        "network_devices.d.netmask",
        "255.0.255.0",
    ),
    (
        Node(network_devices={"d": NetDev(netmask="24")}),
        "network_devices.d.netmask",
        "24",
    ),
    (
        Node(network_devices={"d": NetDev(ipaddr6="fd00::g")}),
        "network_devices.d.ipaddr6",
        "fd00::g",
    ),
    (
        Node(network_devices={"d": NetDev(gateway6="10.0.0.1")}),
        "network_devices.d.gateway6",
        "10.0.0.1",
    ),
    (Node(network_devices={"d": NetDev(prefixlen6=129)}), "network_devices.d.prefixlen6", "129"),
    (Node(network_devices={"d": NetDev(mtu=67)}), "network_devices.d.mtu", "67"),
    (Node(network_devices={"d": NetDev(mtu=65536)}), "network_devices.d.mtu", "65536"),
    (Node(network_devices={"d": NetDev(device="eth 0")}), "network_devices.d.device", "eth 0"),
    (Node(network_devices={"bad name": NetDev()}), "network_devices", "bad name"),
    (
        Node(network_devices={"d": NetDev(tags={"a b": "1"})}),
        "network_devices.d.tags",
        "a b",
    ),
    (Node(ipmi=IPMI(ipaddr="300.1.1.1")), "ipmi.ipaddr", "300.1.1.1"),
    (Node(ipmi=IPMI(gateway="x")), "ipmi.gateway", "x"),
    (Node(ipmi=IPMI(netmask="255.255.0.255")), "ipmi.netmask", "255.255.0.255"),
    (Node(ipmi=IPMI(tags={"": "1"})), "ipmi.tags", "''"),
    (Node(tags={"bad key": "1"}), "tags", "bad key"),
    (Node(kernel=Kernel(args=["quiet", ""])), "kernel.args", "''"),
    (Node(kernel=Kernel(args=["  "])), "kernel.args", "'  '"),
    (Node(system_overlay=["wwinit", "a/b"]), "system_overlay", "a/b"),
    (Node(runtime_overlay=[""]), "runtime_overlay", "''"),
    (
        Node(disks={"/dev/vda": Disk(partitions={"p": Partition(number=0)})}),
        "disks./dev/vda.partitions.p.number",
        "0",
    ),
    (
        Node(disks={"/dev/vda": Disk(partitions={"p": Partition(size_mib=-1)})}),
        "disks./dev/vda.partitions.p.size_mib",
        "-1",
    ),
]


@pytest.mark.parametrize(("node", "field", "value"), BAD_NODES)
def test_bad_node_is_invalid_naming_field_and_value(node: Node, field: str, value: str) -> None:
    with pytest.raises(Invalid) as exc:
        validate_node(node)
    assert exc.value.field == field
    assert value in exc.value.message


def test_validate_profile_checks_the_same_fields() -> None:
    with pytest.raises(Invalid) as exc:
        validate_profile(Profile(name="p", network_devices={"d": NetDev(mtu=10)}))
    assert exc.value.field == "network_devices.d.mtu"
    with pytest.raises(Invalid) as exc:
        validate_profile(Profile(name="bad_name"))
    assert exc.value.field == "name"
    profile = validate_profile(
        Profile(name="p", network_devices={"d": NetDev(hwaddr="AA-BB-CC-DD-EE-FF")})
    )
    assert profile.network_devices["d"].hwaddr == "aa:bb:cc:dd:ee:ff"


def test_check_profiles_exist_names_the_missing_one() -> None:
    store = {"default": Profile(name="default")}
    check_profiles_exist(Node(profiles=["default", "~absent"]), store)
    with pytest.raises(Invalid) as exc:
        check_profiles_exist(Node(profiles=["default", "gpu"]), store)
    assert exc.value.field == "profiles"
    assert "'gpu'" in exc.value.message


def test_check_no_cycle_spells_out_the_cycle() -> None:
    store = {
        "a": Profile(name="a", profiles=["b"]),
        "b": Profile(name="b", profiles=["c"]),
        "c": Profile(name="c"),
    }
    check_no_cycle("c", Profile(profiles=["~a", "d"]), store)  # negations and unknowns: no edge
    with pytest.raises(Invalid) as exc:
        check_no_cycle("c", Profile(profiles=["a"]), store)
    assert exc.value.field == "profiles"
    assert "c -> a -> b -> c" in exc.value.message
    with pytest.raises(Invalid) as exc:
        check_no_cycle("x", Profile(profiles=["x"]), store)
    assert "x -> x" in exc.value.message


def test_check_no_cycle_terminates_on_existing_cycles_elsewhere() -> None:
    store = {"a": Profile(name="a", profiles=["b"]), "b": Profile(name="b", profiles=["a"])}
    check_no_cycle("new", Profile(profiles=["a"]), store)


def _node(name: str, mac: str, ip: str, ip6: str | None = None) -> Node:
    dev = NetDev(hwaddr=mac, ipaddr=ip, ipaddr6=ip6)
    return Node(name=name, network_devices={"default": dev})


@pytest.mark.parametrize(
    ("candidate", "field", "value"),
    [
        (
            _node("n2", "52:54:00:00:00:01", "10.0.0.2"),
            "network_devices.default.hwaddr",
            "52:54:00:00:00:01",
        ),
        (
            _node("n2", "52-54-00-00-00-01", "10.0.0.2"),
            "network_devices.default.hwaddr",
            "52-54-00-00-00-01",
        ),
        (
            _node("n2", "52:54:00:00:00:02", "10.0.0.1"),
            "network_devices.default.ipaddr",
            "10.0.0.1",
        ),
        (
            _node("n2", "52:54:00:00:00:02", "10.0.0.2", "FD00:0::1"),
            "network_devices.default.ipaddr6",
            "FD00:0::1",
        ),
        (
            Node(name="n2", ipmi=IPMI(ipaddr="10.0.0.1")),
            "ipmi.ipaddr",
            "10.0.0.1",
        ),
    ],
)
def test_duplicate_address_is_a_conflict_naming_the_other_node(
    candidate: Node, field: str, value: str
) -> None:
    existing = [_node("n1", "52:54:00:00:00:01", "10.0.0.1", "fd00::1"), Node(name="n3")]
    with pytest.raises(Conflict) as exc:
        check_unique_addresses(candidate, existing)
    assert exc.value.field == field
    assert value in exc.value.message
    assert "n1" in exc.value.message


def test_a_node_may_keep_its_own_addresses() -> None:
    n1 = _node("n1", "52:54:00:00:00:01", "10.0.0.1")
    check_unique_addresses(n1, [n1, _node("n2", "52:54:00:00:00:02", "10.0.0.2")])


def test_address_index_follows_adds_and_removes() -> None:
    index = AddressIndex()
    index.add(_node("n1", "52:54:00:00:00:01", "10.0.0.1"))
    candidate = _node("n2", "52:54:00:00:00:09", "10.0.0.1")
    with pytest.raises(Conflict):
        index.check(candidate)
    index.add(_node("n1", "52:54:00:00:00:01", "10.0.0.5"))  # n1 moved: its old address frees
    index.check(candidate)
    index.add(candidate)
    index.remove("n1")
    index.check(_node("n3", "52:54:00:00:00:01", "10.0.0.5"))
    with pytest.raises(Conflict) as exc:
        index.check(_node("n3", "52:54:00:00:00:09", "10.0.0.9"))
    assert "n2" in exc.value.message


def _indexed(count: int) -> tuple[list[Node], AddressIndex]:
    nodes = [
        _node(
            f"n{i:05d}",
            f"52:54:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}",
            f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}",
        )
        for i in range(count)
    ]
    index = AddressIndex()
    for node in nodes:
        index.add(node)
    return nodes, index


def test_address_index_finds_a_conflict_among_ten_thousand_nodes() -> None:
    nodes, index = _indexed(10_000)
    for node in nodes:
        index.check(node)  # its own addresses: no conflict
    with pytest.raises(Conflict) as exc:
        index.check(_node("new", "52:54:00:00:27:0f", "10.200.0.1"))
    assert "n09999" in exc.value.message


def test_address_index_checks_take_as_long_however_many_nodes_it_holds() -> None:
    # A lookup, not a scan: ten times the nodes leave 1,000 checks about as long (a scan
    # would make them ten times longer).
    def checks(count: int) -> Callable[[], object]:
        nodes, index = _indexed(count)
        return lambda: [index.check(node) for node in nodes[:1000]]

    assert growth(checks, 1_000, 10_000) < 5
