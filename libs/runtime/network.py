"""`wolfpack up --ip/--dhcp/--dhcp-range` checked against this host before anything starts:
the interface exists and has the address, the range lies in its network, dnsmasq is there.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import socket
import subprocess
from typing import Final

import msgspec

from libs.common.errors import Invalid

# dnsmasq lives in sbin, which a non-root PATH often lacks.
SBIN: Final = ("/usr/local/sbin", "/usr/sbin", "/sbin")


class ServerNetwork(msgspec.Struct, frozen=True, kw_only=True):
    """Where nodes reach the server, and the DHCP service `wolfpack up` runs (if any)."""

    ip: str
    netmask: str | None = None
    dhcp_interface: str | None = None
    dhcp_range: list[str] = msgspec.field(default_factory=list)
    # The dnsmasq binary; set when dhcp_interface is.
    dnsmasq: str | None = None


def server_network(
    ip: str | None, dhcp: str | None, dhcp_range: str | None
) -> ServerNetwork | None:
    """The checked flags (None: none given, overlayd.yaml stays as it is). Invalid names the
    flag's field: ip, dhcp or dhcp_range."""
    address = _address(ip, "ip", "--ip") if ip is not None else None
    if dhcp is None:
        if dhcp_range is not None:
            raise Invalid("--dhcp-range needs --dhcp IFACE", field="dhcp_range")
        if address is None:
            return None
        # An address of this host brings its netmask; another one (NAT, a proxy) is kept as is.
        try:
            on_host = next((a for a in _host_addresses() if a.ip == address), None)
        except Invalid:
            on_host = None
        return ServerNetwork(ip=str(address), netmask=_netmask(on_host))
    own = interface_addresses(dhcp)
    if not own:
        raise Invalid(f"--dhcp {dhcp}: the interface has no IPv4 address", field="dhcp")
    if address is None:
        chosen = own[0]
    else:
        found = [a for a in own if a.ip == address]
        if not found:
            listed = ", ".join(str(a) for a in own)
            raise Invalid(f"--ip {address} is not an address of {dhcp} ({listed})", field="ip")
        chosen = found[0]
    first_last = _range(dhcp_range, chosen, dhcp) if dhcp_range is not None else []
    dnsmasq = find_dnsmasq()
    if os.geteuid() != 0:
        raise Invalid("--dhcp needs root: dnsmasq binds DHCP's port 67", field="dhcp")
    return ServerNetwork(
        ip=str(chosen.ip),
        netmask=_netmask(chosen),
        dhcp_interface=dhcp,
        dhcp_range=first_last,
        dnsmasq=dnsmasq,
    )


def interface_addresses(name: str) -> list[ipaddress.IPv4Interface]:
    """The IPv4 addresses of interface `name`, with their networks (Invalid if none such)."""
    try:
        socket.if_nametoindex(name)
    except OSError:
        raise Invalid(f"--dhcp {name}: no network interface of that name", field="dhcp") from None
    return _host_addresses(name)


def find_dnsmasq() -> str:
    found = _which("dnsmasq")
    if found is None:
        raise Invalid(
            "--dhcp runs dnsmasq, which is not installed (Debian: apt-get install dnsmasq)",
            field="dhcp",
        )
    return found


def _host_addresses(interface: str | None = None) -> list[ipaddress.IPv4Interface]:
    """IPv4 addresses from iproute2 (all of them, secondary ones too), of one interface or all."""
    ip = _which("ip")
    if ip is None:
        raise Invalid("cannot list the interfaces' addresses: `ip` (iproute2) is not installed")
    argv = [ip, "-json", "-4", "address", "show"] + (["dev", interface] if interface else [])
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise Invalid(f"{' '.join(argv[1:])}: {done.stderr.strip()}")
    return [
        ipaddress.IPv4Interface(f"{info['local']}/{info['prefixlen']}")
        for link in json.loads(done.stdout or "[]")
        for info in link.get("addr_info", [])
        if info.get("family") == "inet"
    ]


def _which(program: str) -> str | None:
    path = os.environ.get("PATH", os.defpath) + os.pathsep + os.pathsep.join(SBIN)
    return shutil.which(program, path=path)


def _address(text: str, field: str, flag: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        raise Invalid(f"{flag} {text!r} is not an IPv4 address", field=field) from None


def _range(text: str, server: ipaddress.IPv4Interface, interface: str) -> list[str]:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2:
        raise Invalid(f"--dhcp-range {text!r} is not FIRST,LAST", field="dhcp_range")
    first, last = (_address(p, "dhcp_range", "--dhcp-range") for p in parts)
    if first > last:
        raise Invalid(f"--dhcp-range {text}: {first} comes after {last}", field="dhcp_range")
    network = server.network
    # Host addresses only: not the network's own address, nor its broadcast.
    inside = network.network_address < first and last < network.broadcast_address
    if network.num_addresses <= 2 or not inside:
        raise Invalid(
            f"--dhcp-range {text} is outside {interface}'s network {network}", field="dhcp_range"
        )
    if first <= server.ip <= last:
        raise Invalid(
            f"--dhcp-range {text} contains the server's own address {server.ip}",
            field="dhcp_range",
        )
    return [str(first), str(last)]


def _netmask(address: ipaddress.IPv4Interface | None) -> str | None:
    return str(address.netmask) if address is not None else None
