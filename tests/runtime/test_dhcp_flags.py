"""`wolfpack up --ip/--dhcp/--dhcp-range`: flags checked against this host's interfaces with
errors that name the problem, and what they write before anything starts (overlayd.yaml keys,
dnsmasq's main file, the dnsmasq command line), checked by dnsmasq itself."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
import yaml

from libs.common.errors import Invalid
from libs.common.models.node import NetDev, Node
from libs.common.settings import Settings
from libs.common.site.config import load_config, template_settings
from libs.common.site.hostconfig import HostConfig
from libs.runtime import dhcp, network
from libs.runtime.network import ServerNetwork, server_network
from tests.cli import run_cli
from tests.needs import need_command

LO = dict(ip="127.0.0.1", dhcp="lo")


@pytest.mark.parametrize(
    ("ip", "iface", "dhcp_range", "field", "says"),
    [
        (None, "nosuch0", None, "dhcp", "--dhcp nosuch0: no network interface of that name"),
        ("10.9.9.9", "lo", None, "ip", "--ip 10.9.9.9 is not an address of lo (127.0.0.1/8)"),
        ("127.0.0.300", "lo", None, "ip", "--ip '127.0.0.300' is not an IPv4 address"),
        (None, None, "10.0.0.1,10.0.0.9", "dhcp_range", "--dhcp-range needs --dhcp IFACE"),
        (*LO.values(), "10.0.0.1,10.0.0.9", "dhcp_range", "is outside lo's network 127.0.0.0/8"),
        (*LO.values(), "127.0.0.9", "dhcp_range", "'127.0.0.9' is not FIRST,LAST"),
        (*LO.values(), "127.0.0.9,127.0.0.2", "dhcp_range", "127.0.0.9 comes after 127.0.0.2"),
        (*LO.values(), "127.0.0.0,127.0.0.9", "dhcp_range", "is outside lo's network"),
        (*LO.values(), "127.0.0.1,127.0.0.9", "dhcp_range", "the server's own address 127.0.0.1"),
    ],
)
def test_bad_flags_name_the_problem(
    ip: str | None, iface: str | None, dhcp_range: str | None, field: str, says: str
) -> None:
    need_command("ip", "iproute2")
    with pytest.raises(Invalid) as caught:
        server_network(ip, iface, dhcp_range)
    assert caught.value.field == field
    assert says in caught.value.message


def test_a_missing_dnsmasq_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A PATH with `ip` and nothing else, and no sbin folders added.
    (tmp_path / "ip").symlink_to(need_command("ip", "iproute2"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(network, "SBIN", ())
    with pytest.raises(Invalid) as caught:
        server_network("127.0.0.1", "lo", "127.0.0.10,127.0.0.20")
    assert caught.value.field == "dhcp"
    assert "dnsmasq, which is not installed" in caught.value.message


def test_good_flags() -> None:
    need_command("ip", "iproute2")
    assert server_network(None, None, None) is None  # overlayd.yaml stays as it is
    # An address of this host brings its netmask; one elsewhere (NAT, proxy) is taken as is.
    assert server_network("127.0.0.1", None, None) == ServerNetwork(
        ip="127.0.0.1", netmask="255.0.0.0"
    )
    assert server_network("203.0.113.9", None, None) == ServerNetwork(ip="203.0.113.9")
    if os.geteuid() != 0:  # what a user without root is told, instead of a skip
        with pytest.raises(Invalid, match="--dhcp needs root"):
            server_network(None, "lo", None)
        return
    binary = need_command("dnsmasq", "dnsmasq")
    assert server_network(None, "lo", "127.0.0.10, 127.0.0.20") == ServerNetwork(
        ip="127.0.0.1",
        netmask="255.0.0.0",
        dhcp_interface="lo",
        dhcp_range=["127.0.0.10", "127.0.0.20"],
        dnsmasq=binary,
    )
    assert server_network("127.0.0.1", "lo", None) == ServerNetwork(
        ip="127.0.0.1", netmask="255.0.0.0", dhcp_interface="lo", dnsmasq=binary
    )


def test_wolfpack_up_refuses_bad_flags_before_starting(tmp_path: Path) -> None:
    need_command("ip", "iproute2")
    data = tmp_path / "data"
    done = run_cli(
        *("wolfpack", "up", "--data", str(data)),
        *("--dhcp", "nosuch0", "--dhcp-range", "10.0.0.1,10.0.0.9"),
        within=60,
    )
    assert done.returncode == 2
    assert "Error: --dhcp nosuch0: no network interface of that name" in done.stderr
    assert not data.exists()


CLUSTER = ServerNetwork(
    ip="10.5.0.1",
    netmask="255.255.0.0",
    dhcp_interface="eth9",
    dhcp_range=["10.5.200.1", "10.5.200.99"],
    dnsmasq="/usr/sbin/dnsmasq",
)


def test_flags_go_into_overlayd_yaml_keeping_hand_set_keys(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "overlayd.yaml").write_text("# mine\nupdate_interval: 9\nip: 10.0.0.1\n")
    settings = Settings(data=str(data))
    child = dhcp.configure(settings, CLUSTER, dhcp.reload_command(data / "run"))
    assert child is not None and child.name == "dnsmasq"
    doc = yaml.safe_load((data / "overlayd.yaml").read_text())
    reload = dhcp.reload_command(data / "run")
    assert doc == {
        "update_interval": 9,
        "ip": "10.5.0.1",
        "netmask": "255.255.0.0",
        "dhcp_interface": "eth9",
        "dhcp_range": ["10.5.200.1", "10.5.200.99"],
        "dhcp_reload": reload,
    }
    assert load_config(data).dhcp_reload == reload
    # Unchanged flags: the file is left alone.
    mtime = (data / "overlayd.yaml").stat().st_mtime_ns
    dhcp.configure(settings, CLUSTER, dhcp.reload_command(data / "run"))
    assert (data / "overlayd.yaml").stat().st_mtime_ns == mtime
    # Without --dhcp: no dnsmasq, and overlayd stops signalling the one it no longer has.
    assert dhcp.configure(settings, None, dhcp.reload_command(data / "run")) is None
    doc = yaml.safe_load((data / "overlayd.yaml").read_text())
    assert "dhcp_reload" not in doc and doc["ip"] == "10.5.0.1"
    # --ip alone sets the address and nothing else.
    dhcp.configure(settings, ServerNetwork(ip="10.5.0.2"), dhcp.reload_command(data / "run"))
    assert yaml.safe_load((data / "overlayd.yaml").read_text())["ip"] == "10.5.0.2"


def test_a_dnsmasq_that_watches_the_files_leaves_overlayd_nothing_to_signal(
    tmp_path: Path,
) -> None:
    """`wolfpack dhcp` (its own container): overlayd cannot signal across containers, and a
    reload command an earlier `up` left would fail at every change."""
    settings = Settings(data=str(tmp_path))
    dhcp.configure(settings, CLUSTER, dhcp.reload_command(tmp_path / "run"))
    assert dhcp.configure(settings, CLUSTER, None) is not None
    doc = yaml.safe_load((tmp_path / "overlayd.yaml").read_text())
    assert "dhcp_reload" not in doc and doc["dhcp_interface"] == "eth9"


def test_a_broken_overlayd_yaml_is_named(tmp_path: Path) -> None:
    (tmp_path / "overlayd.yaml").write_text("ip: [oops\n")
    with pytest.raises(Invalid, match=r"overlayd\.yaml is not valid YAML") as broken:
        dhcp.configure(Settings(data=str(tmp_path)), CLUSTER, dhcp.reload_command(tmp_path / "run"))
    # One line naming where, as a log line or a terminal wants it, not PyYAML's excerpt.
    assert "\n" not in broken.value.message and "line 2, column 1: expected" in broken.value.message
    (tmp_path / "overlayd.yaml").write_text("lease_time: 6h\nupdate_interval: 0\n")
    with pytest.raises(Invalid) as caught:
        dhcp.configure(Settings(data=str(tmp_path)), CLUSTER, dhcp.reload_command(tmp_path / "run"))
    assert caught.value.field == "update_interval"  # keys up does not set are checked too
    assert not (tmp_path / "host").exists()  # nothing written


async def test_dnsmasq_starts_on_the_file_overlayd_writes(tmp_path: Path) -> None:
    """`up` writes dnsmasq.conf before the registry is up; overlayd, rendering with nodes,
    leaves it as it is (so dnsmasq is not signalled for nothing) and fills dhcp-hosts."""
    binary = need_command("dnsmasq", "dnsmasq")
    data = tmp_path / "data"
    data.mkdir()
    settings = Settings(data=str(data), port_offset=3)
    child = dhcp.configure(settings, CLUSTER, dhcp.reload_command(data / "run"))
    assert child is not None
    conf = (data / "host" / "dnsmasq.conf").read_text()
    assert "dhcp-boot=tag:ipxe,http://10.5.0.1:9876/ipxe/${mac}" in conf.splitlines()
    assert (data / "host" / "dhcp-hosts").exists()
    config = load_config(data)
    host = HostConfig(data, template_settings(config, settings), config)
    node = Node(name="n1", network_devices={"default": NetDev(hwaddr="aa:bb:cc:00:00:01")})
    changed = await host.update([node])
    assert "dnsmasq.conf" not in changed and "dhcp-hosts" in changed
    # The command line up runs, as a syntax check by dnsmasq itself (the interface is made up).
    argv = [binary if a == CLUSTER.dnsmasq else a for a in child.argv]
    assert "--keep-in-foreground" in argv and "--port=0" in argv
    assert f"--conf-file={data.resolve() / 'host' / 'dnsmasq.conf'}" in argv
    assert f"--dhcp-leasefile={data.resolve() / 'dnsmasq' / 'dnsmasq.leases'}" in argv
    test = await asyncio.create_subprocess_exec(*argv, "--test", stderr=asyncio.subprocess.PIPE)
    _, errors = await test.communicate()
    assert test.returncode == 0, errors.decode()


def test_wolfpack_up_names_a_broken_overlayd_yaml(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "overlayd.yaml").write_text("dhcp_range: [10.0.0.9, 10.0.0.1]\n")
    done = run_cli("wolfpack", "up", "--data", str(data), "--ip", "127.0.0.1", within=60)
    assert done.returncode == 1
    assert "overlayd.yaml: dhcp_range starts after it ends" in done.stdout + done.stderr
    assert not (data / "nats").exists()  # stopped before anything started
