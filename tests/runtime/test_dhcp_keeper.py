"""`wolfpack dhcp`: dnsmasq on its own (compose's host-networked container), following the host
files overlayd writes into DATA/host with no signal from overlayd. A real dnsmasq on a veth
pair, a real DHCP client in a namespace, the files written by overlayd's own writer."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from libs.common.models.node import NetDev, Node
from libs.common.settings import Settings
from libs.common.site.config import load_config, template_settings
from libs.common.site.hostconfig import HostConfig
from tests.cli import run_cli, start_cli
from tests.runtime.dhcp_network import WAIT, Network, leased
from tests.stack import stop_process
from tests.waiting import eventually_sync


class Keeper:
    def __init__(self, data: Path, process: subprocess.Popen[bytes], log: Path) -> None:
        self.data = data
        self.process = process
        self.log = log

    def dnsmasq(self, other_than: int | None = None) -> int:
        """The running dnsmasq's pid (one that is not `other_than`), as its pid file says."""
        path = self.data / "dnsmasq" / "dnsmasq.pid"

        def running() -> int | None:
            pid = int(path.read_text())
            alive = Path(f"/proc/{pid}/comm").read_text().strip() == "dnsmasq"
            return pid if alive and pid != other_than else None

        return eventually_sync(
            running,
            f"a dnsmasq running (not {other_than}), as {path} says",
            within=WAIT,
            ignoring=(FileNotFoundError, ValueError),
        )

    def write_leases(self, *nodes: Node) -> None:
        """What overlayd does after an edit: its host-file writer, on the config it reads."""
        config = load_config(self.data)
        host = HostConfig(
            self.data, template_settings(config, Settings(data=str(self.data))), config
        )
        asyncio.run(host.update(nodes))


def node(name: str, mac: str, address: str) -> Node:
    return Node(name=name, network_devices={"default": NetDev(hwaddr=mac, ipaddr=address)})


@pytest.fixture(scope="module")
def keeper(network: Network, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keeper]:
    folder = tmp_path_factory.mktemp("dhcp-keeper")
    data = folder / "data"
    data.mkdir(mode=0o700)
    # What an earlier `wolfpack up` left: a reload overlayd could not run across containers.
    (data / "overlayd.yaml").write_text("dhcp_reload: kill -HUP 1\nupdate_interval: 7\n")
    flags = ["--data", str(data), "--ip", network.host(1), "--dhcp", network.server]
    flags += ["--dhcp-range", f"{network.host(100)},{network.host(150)}"]
    log = folder / "dhcp.log"
    process = start_cli("wolfpack", "dhcp", *flags, log=log)
    try:
        yield Keeper(data, process, log)
    finally:
        stop_process(process)


def test_the_flags_reach_overlayd_and_nothing_is_left_for_it_to_signal(
    keeper: Keeper, network: Network
) -> None:
    keeper.dnsmasq()
    config = yaml.safe_load((keeper.data / "overlayd.yaml").read_text())
    assert config["ip"] == network.host(1) and config["dhcp_interface"] == network.server
    assert config["update_interval"] == 7 and "dhcp_reload" not in config


def test_new_leases_are_served_without_a_restart(keeper: Keeper, network: Network) -> None:
    pid = keeper.dnsmasq()
    keeper.write_leases(node("k01", "52:54:00:0e:00:01", network.host(11)))
    leased(network, "52:54:00:0e:00:01", network.host(11))
    keeper.write_leases(node("k01", "52:54:00:0e:00:01", network.host(21)))
    leased(network, "52:54:00:0e:00:01", network.host(21))
    assert keeper.dnsmasq() == pid  # signalled, not restarted
    assert "dhcp-hosts changed: dnsmasq re-reads it" in keeper.log.read_text()


def test_a_new_main_file_restarts_dnsmasq_on_it(keeper: Keeper, network: Network) -> None:
    pid = keeper.dnsmasq()
    conf = keeper.data / "host" / "dnsmasq.conf"
    marker = "# dhcp-keeper test: a changed main file"
    # overlayd replaces the file by rename; so does this.
    draft = conf.with_suffix(".draft")
    draft.write_text(conf.read_text() + marker + "\n")
    os.replace(draft, conf)
    keeper.dnsmasq(other_than=pid)
    leased(network, "52:54:00:0e:00:01", network.host(21))  # and it serves again


def test_a_dnsmasq_that_dies_is_started_again(keeper: Keeper, network: Network) -> None:
    pid = keeper.dnsmasq()
    os.kill(pid, signal.SIGKILL)
    keeper.dnsmasq(other_than=pid)
    assert keeper.process.poll() is None
    leased(network, "52:54:00:0e:00:01", network.host(21))


def test_sigterm_stops_dnsmasq_and_the_keeper(keeper: Keeper) -> None:
    # Last in this module: it ends the keeper the tests above share.
    pid = keeper.dnsmasq()
    keeper.process.send_signal(signal.SIGTERM)
    assert keeper.process.wait(30) == 0
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()


def test_without_an_interface_it_says_so_in_one_line(tmp_path: Path) -> None:
    done = run_cli("wolfpack", "dhcp", "--data", str(tmp_path))
    assert done.returncode == 2 and "--dhcp IFACE is required" in done.stderr
    done = run_cli("wolfpack", "dhcp", "--data", str(tmp_path), "--dhcp", "wpnosuch0")
    assert done.returncode == 2 and "no network interface of that name" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "overlayd.yaml").exists()
