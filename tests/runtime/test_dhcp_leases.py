"""`wolfpack up --dhcp`: a real dnsmasq under the supervisor, and a real DHCP client (busybox
udhcpc) in a network namespace behind a veth pair, getting the addresses of the nodes in the
registry; nodes added or readdressed later get theirs with no restart (SIGHUP reload)."""

from __future__ import annotations

import ipaddress
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.runtime.dhcp_network import WAIT, Network, lease, leased
from tests.stack import UpStack, start_up
from tests.waiting import eventually_sync


@pytest.fixture(scope="module")
def stack(network: Network, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpStack]:
    data = tmp_path_factory.mktemp("dhcp") / "data"
    data.mkdir(mode=0o700)  # private, as DATA often is: dnsmasq must still read its files
    # A key set by hand, which `up` must keep.
    (data / "overlayd.yaml").write_text("update_interval: 7\n")
    flags = ["--ip", network.host(1), "--dhcp", network.server]
    flags += ["--dhcp-range", f"{network.host(100)},{network.host(150)}"]
    with start_up(data, None, *flags) as up:
        yield up


def api(stack: UpStack) -> httpx.Client:
    headers = {"Authorization": f"Bearer {stack.token}"}
    return httpx.Client(base_url=f"{stack.registry_url}/api/v1", headers=headers, timeout=30)


def dnsmasq_pid(stack: UpStack) -> int:
    """The supervised dnsmasq's pid, once it runs (the supervisor writes it at start)."""
    path = stack.data / "run" / "dnsmasq.pid"

    def running() -> int | None:
        pid = int(path.read_text())
        return pid if Path(f"/proc/{pid}/comm").read_text().strip() == "dnsmasq" else None

    return eventually_sync(
        running, f"a dnsmasq running, as {path} says", within=WAIT, ignoring=(FileNotFoundError,)
    )


def hosts_file_has(stack: UpStack, line: str) -> None:
    """Wait until overlayd has written `line` into dnsmasq's hosts file."""
    path = stack.data / "host" / "dhcp-hosts"
    eventually_sync(
        lambda: line in path.read_text().splitlines(),
        f"{line!r} in {path}",
        within=WAIT,
        ignoring=(FileNotFoundError,),
    )


def put_node(stack: UpStack, name: str, mac: str, address: str) -> None:
    body = {"network_devices": {"default": {"hwaddr": mac, "ipaddr": address}}}
    with api(stack) as client:
        answer = client.put(f"/nodes/{name}", json=body)
    assert answer.status_code in (200, 201), answer.text


def test_up_tells_overlayd_the_flags_and_keeps_hand_set_keys(
    stack: UpStack, network: Network
) -> None:
    config = yaml.safe_load((stack.data / "overlayd.yaml").read_text())
    assert config["update_interval"] == 7
    assert config["ip"] == network.host(1)
    assert config["netmask"] == "255.255.255.0"
    assert config["dhcp_interface"] == network.server
    assert config["dhcp_range"] == [network.host(100), network.host(150)]
    conf = (stack.data / "host" / "dnsmasq.conf").read_text().splitlines()
    assert f"interface={network.server}" in conf
    assert f"dhcp-hostsfile={stack.data.resolve() / 'host' / 'dhcp-hosts'}" in conf


def test_a_node_added_after_start_gets_its_address(stack: UpStack, network: Network) -> None:
    pid = dnsmasq_pid(stack)
    put_node(stack, "d01", "52:54:00:0d:00:01", network.host(11))
    hosts_file_has(stack, f"52:54:00:0d:00:01,{network.host(11)},d01,infinite")
    leased(network, "52:54:00:0d:00:01", network.host(11))
    assert dnsmasq_pid(stack) == pid


def test_an_unknown_machine_gets_an_address_from_the_range(
    stack: UpStack, network: Network
) -> None:
    address = lease(network, "52:54:00:0d:00:99")
    assert address is not None
    first, last = (ipaddress.IPv4Address(network.host(n)) for n in (100, 150))
    assert first <= ipaddress.IPv4Address(address) <= last


def test_a_second_node_and_a_new_address_take_effect_without_a_restart(
    stack: UpStack, network: Network
) -> None:
    pid = dnsmasq_pid(stack)
    put_node(stack, "d02", "52:54:00:0d:00:02", network.host(12))
    hosts_file_has(stack, f"52:54:00:0d:00:02,{network.host(12)},d02,infinite")
    leased(network, "52:54:00:0d:00:02", network.host(12))

    put_node(stack, "d01", "52:54:00:0d:00:01", network.host(21))
    hosts_file_has(stack, f"52:54:00:0d:00:01,{network.host(21)},d01,infinite")
    leased(network, "52:54:00:0d:00:01", network.host(21))
    assert dnsmasq_pid(stack) == pid  # reloaded, not restarted
    assert stack.process.poll() is None
    leases = (stack.data / "dnsmasq" / "dnsmasq.leases").read_text()
    assert f"52:54:00:0d:00:01 {network.host(21)} d01" in leases


def test_stopping_up_stops_dnsmasq(stack: UpStack) -> None:
    # Last in this module: it ends the stack the tests above share.
    pid = dnsmasq_pid(stack)
    stack.process.send_signal(signal.SIGTERM)
    assert stack.process.wait(30) == 0
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
    assert not (stack.data / "run" / "dnsmasq.pid").exists()
