"""A cluster network for DHCP tests: a veth pair, the server end in this namespace and the
client end in a namespace of the test's own, and a real DHCP client (busybox udhcpc) asking
for leases there."""

from __future__ import annotations

import contextlib
import ipaddress
import re
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

from tests.needs import need_command, need_root, unavailable
from tests.waiting import eventually_sync

WAIT = 60.0
LEASE = re.compile(r"lease of (\S+) obtained")
# Once and quit, no interface set-up; 5 tries 3 s apart: dnsmasq pings a dynamic address first.
UDHCPC = ("-n", "-q", "-f", "-s", "/bin/true", "-t", "5", "-T", "3")


@dataclass
class Network:
    """A veth pair: `server` in this namespace, `client` in namespace `netns`."""

    netns: str
    server: str
    client: str
    subnet: ipaddress.IPv4Network

    def host(self, number: int) -> str:
        return str(self.subnet.network_address + number)


def run(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(argv)}: {done.stderr}"
    return done.stdout


def require_tools() -> None:
    need_root("DHCP on network namespaces (port 67)")
    need_command("ip", "iproute2")
    need_command("dnsmasq", "dnsmasq")
    need_command("busybox", "busybox-static")
    if "udhcpc" not in run("busybox", "--list").split():
        unavailable("busybox has no udhcpc (install busybox-static)")
    probe = f"wpprobe-{secrets.token_hex(3)}"
    if subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode != 0:
        unavailable("cannot create network namespaces (ip netns add)")
    run("ip", "netns", "del", probe)


@contextlib.contextmanager
def cluster_network() -> Iterator[Network]:
    """A fresh veth pair and client namespace (random names and subnet), removed after."""
    require_tools()
    tag = secrets.token_hex(3)
    subnet = ipaddress.IPv4Network(f"10.{64 + secrets.randbelow(64)}.{secrets.randbelow(256)}.0/24")
    net = Network(netns=f"wpdhcp-{tag}", server=f"wps{tag}", client=f"wpc{tag}", subnet=subnet)
    run("ip", "netns", "add", net.netns)
    try:
        run("ip", "link", "add", net.server, "type", "veth", "peer", "name", net.client)
        run("ip", "link", "set", net.client, "netns", net.netns)
        run("ip", "address", "add", f"{net.host(1)}/24", "dev", net.server)
        run("ip", "link", "set", net.server, "up")
        run("ip", "-n", net.netns, "link", "set", net.client, "up")
        yield net
    finally:
        subprocess.run(["ip", "link", "del", net.server], capture_output=True)
        subprocess.run(["ip", "netns", "del", net.netns], capture_output=True)


def lease(network: Network, mac: str) -> str | None:
    """One run of udhcpc on the client end with `mac`: the address it was given, if any."""
    run("ip", "-n", network.netns, "link", "set", network.client, "address", mac)
    in_client = ("ip", "netns", "exec", network.netns)
    done = subprocess.run(
        [*in_client, "busybox", "udhcpc", "-i", network.client, *UDHCPC],
        capture_output=True,
        text=True,
        timeout=30,
    )
    found = LEASE.search(done.stderr + done.stdout)
    return found.group(1) if found else None


def leased(network: Network, mac: str, wanted: str) -> None:
    """Ask for a lease until dnsmasq hands out `wanted` (it has to re-read its hosts file
    first: overlayd writes it, then signals dnsmasq, which we cannot watch)."""
    got: list[str | None] = []

    def ask() -> list[str | None]:
        got.append(lease(network, mac))
        return got

    eventually_sync(
        ask, f"{mac} given {wanted}", within=WAIT, until=lambda got: got[-1] == wanted, every=0
    )
