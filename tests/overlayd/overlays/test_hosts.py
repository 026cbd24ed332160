"""Overlays hosts and hostname: every node by every address, and the node's own name."""

from __future__ import annotations

from libs.common.models.node import NetDev, Node
from tests.overlayd.overlays.helpers import Cluster, four_nic_node, plain_node, settings


def cluster() -> Cluster:
    return Cluster(
        nodes=[
            plain_node("n02", "10.0.0.12", "aa:bb:cc:00:01:02"),
            four_nic_node(),
            Node(name="n03", profiles=["default"]),  # no address: not listed
            Node(
                name="n04",
                profiles=["default"],
                network_devices={  # no primary_network, no `default`: the first with an address
                    "a": NetDev(device="ens1"),
                    "b": NetDev(device="ens2", ipaddr="10.0.0.14"),
                    "c": NetDev(ipaddr="10.5.0.14"),
                },
            ),
        ],
        settings=settings(ip="10.0.0.1"),
    )


def entries(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines() if line.strip() and line[0] != "#"]


def test_every_node_by_every_address() -> None:
    hosts = cluster().render("hosts", "n01")["etc/hosts"]
    assert hosts.mode == 0o644
    assert entries(hosts.text) == [
        [
            "127.0.0.1",
            "localhost",
            "localhost.localdomain",
            "localhost4",
            "localhost4.localdomain4",
        ],
        ["::1", "localhost", "localhost.localdomain", "localhost6", "localhost6.localdomain6"],
        ["10.0.0.1", "wolfpack-server", "warewulf"],
        ["10.20.0.11", "n01-bond", "n01-bond0"],
        ["10.0.0.11", "n01.hpc", "n01", "n01-default", "n01-eth0"],
        ["fd00::11", "n01.hpc", "n01", "n01-default", "n01-eth0"],
        ["10.10.0.11", "n01-ib", "n01-ib0"],
        ["10.30.0.11", "n01-spare", "n01-eth3"],
        ["10.42.0.11", "n01-storage", "n01-bond0.42"],
        ["10.0.0.12", "n02", "n02-default", "n02-eth0"],
        ["10.0.0.14", "n04", "n04-b", "n04-ens2"],
        ["10.5.0.14", "n04-c"],
    ]


def test_the_same_file_for_every_node() -> None:
    # Nothing node-specific: one blob in the store serves the whole cluster.
    c = cluster()
    assert {c.render("hosts", name)["etc/hosts"].data for name in ("n01", "n02", "n03")} == {
        c.render("hosts", "n01")["etc/hosts"].data
    }


def test_hostname() -> None:
    files = cluster().render("hostname", "n02")
    assert files["etc/hostname"].text == "n02\n"
    assert files["etc/hostname"].mode == 0o644
