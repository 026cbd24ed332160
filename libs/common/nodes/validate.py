"""Checks on nodes and profiles before they are stored; each problem names its field.

`validate_node`/`validate_profile` check one object and return a normalized copy (MACs in
lowercase colon form, addresses in canonical form). The `check_*` functions need the other
stored objects: profiles that must exist, profile cycles, addresses that must be unique.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TypeVar

import msgspec

from libs.common.errors import Conflict, Invalid
from libs.common.models.node import IPMI, Disk, Kernel, NetDev, Node, Profile
from libs.common.nodes.macs import normalize_mac

T = TypeVar("T", Node, Profile)

_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
# Network names (Warewulf allows `eth0.100`) and tag keys: safe in templates and paths.
_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,63}")
# Linux interface names: at most 15 bytes, no slash or white space.
_IFNAME = re.compile(r"[A-Za-z0-9_.:@-]{1,15}")
# Disk and file system keys: a device path under /dev (`/dev/vda`, `/dev/disk/by-id/nvme-…`),
# written into fstab and unit names, so no white space and no `.`/`..` segments.
_DEVICE = re.compile(r"/dev(?:/[A-Za-z0-9_+:@=,\\-][A-Za-z0-9_.+:@=,\\-]*)+")
_DEVICE_MAX = 255
# GPT partition names (at most 36 characters), used as /dev/disk/by-partlabel/<label>.
_PARTLABEL = re.compile(r"[A-Za-z0-9_.+:@-]{1,36}")
_MTU = (68, 65535)


def validate_name(name: str, field: str = "name") -> str:
    """A node or profile name: one hostname label."""
    if not isinstance(name, str) or not _LABEL.fullmatch(name):
        raise Invalid(
            f"{name!r} is not a valid name: use 1-63 letters, digits and '-', "
            "not starting or ending with '-'",
            field=field,
        )
    return name


def validate_node(node: Node) -> Node:
    """Check a node; return it normalized. The name is checked when set."""
    if node.name:
        validate_name(node.name)
    return _validate_common(node)


def validate_profile(profile: Profile) -> Profile:
    """Check a profile; return it normalized. The name is checked when set."""
    if profile.name:
        validate_name(profile.name)
    return _validate_common(profile)


def check_profiles_exist(obj: Node | Profile, profiles: Mapping[str, Profile]) -> None:
    """Every profile the object names exists (a `~name` negation may name a missing one)."""
    for name in obj.profiles:
        if not name.startswith("~") and name not in profiles:
            raise Invalid(f"profile {name!r} does not exist", field="profiles")


def check_no_cycle(name: str, profile: Profile, profiles: Mapping[str, Profile]) -> None:
    """Refuse to store `profile` as `name` if its nested profiles would lead back to it."""
    graph = {**profiles, name: profile}
    seen = {name}
    # Depth-first with an explicit stack, so a long chain cannot exhaust recursion.
    stack: list[tuple[str, list[str]]] = [(name, [name])]
    while stack:
        current, trail = stack.pop()
        for child in graph[current].profiles:
            if child == name:
                raise Invalid(f"profile cycle: {' -> '.join([*trail, child])}", field="profiles")
            if child.startswith("~") or child in seen or child not in graph:
                continue
            seen.add(child)
            stack.append((child, [*trail, child]))


class AddressIndex:
    """Address -> node names, for uniqueness checks in O(addresses of one node).

    Keys are canonical (lowercase colon MACs, compressed IPs), so `AA-BB-..` and `aa:bb:..`
    collide as they should. IPv4, IPv6 and IPMI addresses share one space.
    """

    def __init__(self) -> None:
        self._owners: dict[tuple[str, str], set[str]] = {}
        self._held: dict[str, list[tuple[str, str]]] = {}

    def add(self, node: Node) -> None:
        """Record (or re-record) the node's addresses; it never refuses, see `check`."""
        self.remove(node.name)
        keys = [key for key, _, _ in _addresses(node)]
        self._held[node.name] = keys
        for key in keys:
            self._owners.setdefault(key, set()).add(node.name)

    def remove(self, name: str) -> None:
        for key in self._held.pop(name, []):
            owners = self._owners.get(key)
            if owners is not None:
                owners.discard(name)
                if not owners:
                    del self._owners[key]

    def mac_owner(self, mac: str) -> str | None:
        """The node holding hardware address `mac` (any spelling), or None."""
        owners = self._owners.get(("hwaddr", _canonical_mac(mac)))
        return min(owners) if owners else None

    def check(self, node: Node) -> None:
        """Conflict naming the field, the value and the other node if an address is taken."""
        for key, value, field in _addresses(node):
            others = self._owners.get(key, set()) - {node.name}
            if others:
                kind = field.rsplit(".", 1)[-1]
                raise Conflict(
                    f"{kind} {value} is already used by node {sorted(others)[0]}", field=field
                )


def check_unique_addresses(node: Node, others: Iterable[Node]) -> None:
    """Conflict if another node (by name) already has one of this node's addresses."""
    index = AddressIndex()
    for other in others:
        if other.name != node.name:
            index.add(other)
    index.check(node)


def _addresses(node: Node) -> Iterator[tuple[tuple[str, str], str, str]]:
    """(index key, value as given, field path) for each hardware and IP address."""
    for net, dev in node.network_devices.items():
        if dev.hwaddr:
            yield (
                ("hwaddr", _canonical_mac(dev.hwaddr)),
                dev.hwaddr,
                f"network_devices.{net}.hwaddr",
            )
        for attr in ("ipaddr", "ipaddr6"):
            value = getattr(dev, attr)
            key = _canonical_ip(value)
            if key:
                yield ("ip", key), value, f"network_devices.{net}.{attr}"
    if node.ipmi is not None:
        key = _canonical_ip(node.ipmi.ipaddr)
        if key:
            yield ("ip", key), str(node.ipmi.ipaddr), "ipmi.ipaddr"


def _canonical_mac(value: str) -> str:
    try:
        return normalize_mac(value)
    except Invalid:
        return value.strip().lower()


def _canonical_ip(value: str | None) -> str | None:
    """Compressed form; None for unset or unspecified (0.0.0.0 means unset in Warewulf)."""
    if not value:
        return None
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return value.strip().lower()
    return None if address.is_unspecified else str(address)


def _validate_common(obj: T) -> T:
    for name in obj.profiles:
        validate_name(name.removeprefix("~"), field="profiles")
    for field in ("system_overlay", "runtime_overlay"):
        for overlay in getattr(obj, field):
            if not overlay.removeprefix("~") or re.search(r"[\s/]", overlay):
                raise Invalid(f"{overlay!r} is not an overlay name", field=field)
    for net in obj.network_devices:
        _check_key(net, "network_devices")
    if obj.primary_network is not None:
        _check_key(obj.primary_network, "primary_network")
    _check_tags(obj.tags, "tags")
    for device, disk in obj.disks.items():
        _check_device(device, "disks")
        _check_disk(disk, f"disks.{device}")
    for device in obj.filesystems:
        _check_device(device, "filesystems")
    return msgspec.structs.replace(
        obj,
        kernel=_check_kernel(obj.kernel),
        ipmi=_check_ipmi(obj.ipmi),
        network_devices={
            net: _check_netdev(dev, f"network_devices.{net}")
            for net, dev in obj.network_devices.items()
        },
    )


def _check_key(key: str, field: str) -> None:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise Invalid(
            f"{key!r} is not a valid key: use up to 64 letters, digits, '_', '.', ':' and '-'",
            field=field,
        )


def _check_tags(tags: Mapping[str, str], field: str) -> None:
    for key in tags:
        _check_key(key, field)


def _check_kernel(kernel: Kernel | None) -> Kernel | None:
    if kernel is not None:
        for arg in kernel.args:
            if not arg.strip():
                raise Invalid(f"empty kernel argument {arg!r}", field="kernel.args")
    return kernel


def _check_netdev(dev: NetDev, field: str) -> NetDev:
    if dev.device is not None and not _IFNAME.fullmatch(dev.device):
        raise Invalid(f"{dev.device!r} is not an interface name", field=f"{field}.device")
    if dev.prefixlen6 is not None and not 0 <= dev.prefixlen6 <= 128:
        raise Invalid(f"prefix length {dev.prefixlen6} is not 0-128", field=f"{field}.prefixlen6")
    if dev.mtu is not None and not _MTU[0] <= dev.mtu <= _MTU[1]:
        raise Invalid(f"MTU {dev.mtu} is not {_MTU[0]}-{_MTU[1]}", field=f"{field}.mtu")
    _check_tags(dev.tags, f"{field}.tags")
    return msgspec.structs.replace(
        dev,
        hwaddr=_opt(dev.hwaddr, normalize_mac, f"{field}.hwaddr"),
        ipaddr=_opt(dev.ipaddr, _ipv4, f"{field}.ipaddr"),
        netmask=_opt(dev.netmask, _netmask, f"{field}.netmask"),
        gateway=_opt(dev.gateway, _ipv4, f"{field}.gateway"),
        ipaddr6=_opt(dev.ipaddr6, _ipv6, f"{field}.ipaddr6"),
        gateway6=_opt(dev.gateway6, _ipv6, f"{field}.gateway6"),
    )


def _check_ipmi(ipmi: IPMI | None) -> IPMI | None:
    if ipmi is None:
        return None
    _check_tags(ipmi.tags, "ipmi.tags")
    return msgspec.structs.replace(
        ipmi,
        ipaddr=_opt(ipmi.ipaddr, _ipv4, "ipmi.ipaddr"),
        netmask=_opt(ipmi.netmask, _netmask, "ipmi.netmask"),
        gateway=_opt(ipmi.gateway, _ipv4, "ipmi.gateway"),
    )


def _check_device(key: str, field: str) -> None:
    """A key of `disks` or `filesystems`: the device path it stands for."""
    if not isinstance(key, str) or len(key) > _DEVICE_MAX or not _DEVICE.fullmatch(key):
        raise Invalid(
            f"{key!r} is not a device path: give one under /dev (like /dev/vda or "
            "/dev/disk/by-partlabel/scratch), without blanks or '.' and '..' parts",
            field=field,
        )


def _check_disk(disk: Disk, field: str) -> None:
    for label, part in disk.partitions.items():
        where = f"{field}.partitions.{label}"
        if not isinstance(label, str) or not _PARTLABEL.fullmatch(label):
            raise Invalid(
                f"{label!r} is not a partition label: use 1-36 letters, digits and '_.+:@-'",
                field=f"{field}.partitions",
            )
        if part.number is not None and part.number < 1:
            raise Invalid(f"partition number {part.number} is below 1", field=f"{where}.number")
        for attr in ("size_mib", "start_mib"):
            value = getattr(part, attr)
            if value is not None and value < 0:
                raise Invalid(f"{attr} {value} is negative", field=f"{where}.{attr}")


def _opt(value: str | None, check: Callable[[str, str], str], field: str) -> str | None:
    return None if value is None else check(value, field)


def _ipv4(value: str, field: str) -> str:
    try:
        return str(ipaddress.IPv4Address(value.strip()))
    except ValueError:
        raise Invalid(f"{value!r} is not an IPv4 address", field=field) from None


def _ipv6(value: str, field: str) -> str:
    try:
        return str(ipaddress.IPv6Address(value.strip()))
    except ValueError:
        raise Invalid(f"{value!r} is not an IPv6 address", field=field) from None


def _netmask(value: str, field: str) -> str:
    mask = _ipv4(value, field)
    hostbits = ~int(ipaddress.IPv4Address(mask)) & 0xFFFFFFFF
    if hostbits & (hostbits + 1):  # host bits must be one run of ones at the end
        raise Invalid(f"{value!r} is not a contiguous netmask (like 255.255.255.0)", field=field)
    return mask
