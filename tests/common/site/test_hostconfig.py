"""The host side: dnsmasq configuration (accepted by `dnsmasq --test`) with its static leases
in a separate hosts file (re-read on SIGHUP), the /etc/hosts block and NFS exports, written
atomically and only when changed, each followed by its reload command; overlayd.yaml read with
clear errors; and a running overlayd keeping DATA/host current."""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from libs.common.errors import Invalid
from libs.common.models.node import NetDev, Node
from libs.common.models.site import NfsExport
from libs.common.settings import Settings
from libs.common.site.config import (
    OverlaydConfig,
    host_address,
    load_config,
    template_settings,
)
from libs.common.site.hostconfig import HostConfig, run_reload, write_atomically
from libs.common.site.hostfiles import (
    BEGIN,
    END,
    render_dhcp_hosts,
    render_dnsmasq,
    render_exports,
    render_hosts,
)
from tests.needs import need_command
from tests.overlayd.helpers import CONFIG, Stack, settled, start_stack

CLUSTER = OverlaydConfig(
    ip="10.0.0.254",
    netmask="255.255.0.0",
    dhcp_range=["10.0.200.1", "10.0.200.250"],
    nfs_exports=[NfsExport(path="/home"), NfsExport(path="/opt", export_options="ro,sync")],
)


def nodes() -> list[Node]:
    return [
        Node(
            name="n2",
            network_devices={
                "default": NetDev(device="eth0", hwaddr="AA-BB-CC-00-00-02", ipaddr="10.0.0.2"),
                "ib": NetDev(device="ib0", hwaddr="aa:bb:cc:00:01:02", ipaddr="10.1.0.2"),
            },
        ),
        Node(name="n1", network_devices={"default": NetDev(hwaddr="AA:BB:CC:00:00:01")}),
        Node(name="n3", network_devices={"default": NetDev(ipaddr="10.0.0.3")}),
        Node(name="n4"),
    ]


def dnsmasq_test(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    need_command("dnsmasq", "dnsmasq")
    conf = tmp_path / "dnsmasq.conf"
    conf.write_text(text)
    (tmp_path / "dhcp-hosts").write_text(render_dhcp_hosts(nodes()))
    return subprocess.run(
        ["dnsmasq", "--test", f"--conf-file={conf}"], capture_output=True, text=True
    )


def test_dnsmasq_config_has_leases_and_boot_by_architecture(tmp_path: Path) -> None:
    settings = template_settings(CLUSTER, Settings(port_offset=7))
    text = render_dnsmasq(settings, CLUSTER, tmp_path)
    lines = text.splitlines()
    assert "port=0" in lines
    assert "dhcp-range=10.0.200.1,10.0.200.250,255.255.0.0,6h" in lines
    # The leases are in a hosts file (dnsmasq re-reads it on SIGHUP, not the main file).
    assert f"dhcp-hostsfile={tmp_path.resolve() / 'dhcp-hosts'}" in lines
    assert not any(line.startswith("dhcp-host=") for line in lines)
    leases = render_dhcp_hosts(nodes()).splitlines()
    assert "aa:bb:cc:00:00:01,n1,infinite" in leases
    assert "aa:bb:cc:00:00:02,10.0.0.2,n2,infinite" in leases
    assert "aa:bb:cc:00:01:02,10.1.0.2,n2-ib,infinite" in leases
    assert not any(",n3," in line for line in leases)
    assert [line for line in leases if not line.startswith("#")] == sorted(
        line for line in leases if not line.startswith("#")
    )
    assert "dhcp-match=set:bios,option:client-arch,0" in lines
    assert {
        "dhcp-match=set:efi64,option:client-arch,7",
        "dhcp-match=set:efi64,option:client-arch,9",
    } <= set(lines)
    assert {"dhcp-userclass=set:ipxe,iPXE", "dhcp-match=set:ipxe,175"} <= set(lines)
    assert "dhcp-boot=tag:ipxe,http://10.0.0.254:9880/ipxe/${mac}" in lines
    assert "dhcp-boot=tag:!ipxe,tag:bios,undionly.kpxe,wolfpack,10.0.0.254" in lines
    assert "dhcp-boot=tag:!ipxe,tag:efi64,ipxe.efi,wolfpack,10.0.0.254" in lines
    done = dnsmasq_test(tmp_path, text)
    assert done.returncode == 0, done.stderr


def test_dnsmasq_config_without_a_range_answers_known_nodes_only(tmp_path: Path) -> None:
    config = OverlaydConfig(ip="192.168.7.1", netmask="255.255.255.0", dhcp_interface="eth1")
    text = render_dnsmasq(template_settings(config, Settings()), config, tmp_path)
    assert "dhcp-range=192.168.7.0,static,255.255.255.0,infinite" in text.splitlines()
    assert "interface=eth1" in text.splitlines()
    done = dnsmasq_test(tmp_path, text)
    assert done.returncode == 0, done.stderr


def test_a_broken_config_is_caught_by_dnsmasq(tmp_path: Path) -> None:
    # The check itself can fail: a lease time dnsmasq does not know.
    config = OverlaydConfig(
        ip="10.0.0.1", netmask="255.255.0.0", dhcp_range=["10.0.1.1", "10.0.1.9"], lease_time="6x"
    )
    text = render_dnsmasq(template_settings(config, Settings()), config, tmp_path)
    assert dnsmasq_test(tmp_path, text).returncode != 0


def test_hosts_block_and_exports() -> None:
    settings = template_settings(CLUSTER, Settings())
    hosts = render_hosts(nodes(), settings).splitlines()
    assert hosts[0] == BEGIN and hosts[-1] == END
    assert "10.0.0.254 wolfpack-server warewulf" in hosts
    assert "10.0.0.2 n2 n2-default n2-eth0" in hosts
    assert "10.1.0.2 n2-ib n2-ib0" in hosts
    assert "10.0.0.3 n3 n3-default" in hosts
    assert not any(line.split()[1:2] == ["n1"] for line in hosts)  # no address, no entry
    exports = render_exports(settings).splitlines()
    assert "/home 10.0.0.0/255.255.0.0(rw,sync,no_root_squash)" in exports
    assert "/opt 10.0.0.0/255.255.0.0(ro,sync)" in exports


def test_files_are_replaced_atomically_and_only_when_changed(tmp_path: Path) -> None:
    target = tmp_path / "host" / "hosts"
    assert write_atomically(target, "one\n") is True
    inode = target.stat().st_ino
    assert write_atomically(target, "one\n") is False
    assert target.stat().st_ino == inode
    assert write_atomically(target, "two\n") is True
    assert target.read_text() == "two\n" and target.stat().st_ino != inode
    assert target.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in target.parent.iterdir()] == ["hosts"]  # no temporary left


async def test_reload_commands_run_after_a_change_only(tmp_path: Path) -> None:
    log = tmp_path / "reloads"
    config = OverlaydConfig(
        ip="10.0.0.254",
        netmask="255.255.0.0",
        dhcp_reload=f"echo dnsmasq >> {log}",
        hosts_reload=f"echo hosts >> {log}",
    )
    host = HostConfig(tmp_path, template_settings(config, Settings()), config)
    first = sorted(await host.update(nodes()))
    assert first == ["dhcp-hosts", "dnsmasq.conf", "exports", "hosts"]
    assert log.read_text().split() == ["dnsmasq", "hosts"]  # one reload for both dnsmasq files
    assert await host.update(nodes()) == []
    assert log.read_text().split() == ["dnsmasq", "hosts"]
    n5 = NetDev(hwaddr="aa:bb:cc:00:00:05", ipaddr="10.0.0.5")
    changed = [*nodes(), Node(name="n5", network_devices={"default": n5})]
    # A new node changes the leases, never the main file (which dnsmasq would not re-read).
    assert sorted(await host.update(changed)) == ["dhcp-hosts", "hosts"]
    assert log.read_text().split() == ["dnsmasq", "hosts", "dnsmasq", "hosts"]
    leases = (tmp_path / "host" / "dhcp-hosts").read_text().splitlines()
    assert len([line for line in leases if not line.startswith("#")]) == 4


async def test_a_failing_or_hanging_reload_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="wolfpack.overlayd.host")
    assert await run_reload("echo nope >&2; exit 3", 5, "dnsmasq.conf") is False
    assert "exited with 3: nope" in caplog.text
    started = time.monotonic()
    assert await run_reload("sleep 30", 0.3, "hosts") is False
    assert time.monotonic() - started < 5  # killed at its limit, not waited out: a hang bound
    assert "took over 0.3s; killed" in caplog.text
    assert await run_reload("true", 5, "exports") is True


def test_overlayd_yaml_is_checked(tmp_path: Path) -> None:
    assert load_config(tmp_path) == OverlaydConfig()
    (tmp_path / "overlayd.yaml").write_text("ip: 10.0.0.1\nnetmask: 255.255.0.0\n")
    assert load_config(tmp_path).ip == "10.0.0.1"
    for text, field in (
        ("ip: 10.0.0.300\n", "ip"),
        ("netmask: 255.0.255.0\n", "netmask"),
        ("dhcp_range: [10.0.0.9, 10.0.0.1]\n", "dhcp_range"),
        ("dhcp_range: [10.0.0.9]\n", "dhcp_range"),
        ("ipaddr: 10.0.0.1\n", "ipaddr"),
        ("update_interval: soon\n", "update_interval"),
        ("nfs_exports: [{path: home}]\n", "nfs_exports"),
    ):
        (tmp_path / "overlayd.yaml").write_text(text)
        with pytest.raises(Invalid) as caught:
            load_config(tmp_path)
        assert caught.value.field == field, (text, caught.value)
        assert "overlayd.yaml" in caught.value.message


def test_the_server_address_defaults_to_this_host() -> None:
    found = host_address()
    addresses = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split()
    assert found.ip in addresses or (found.ip == "127.0.0.1" and not addresses)
    settings = template_settings(OverlaydConfig(), Settings())
    assert (settings.ip, settings.netmask) == (found.ip, found.netmask)
    assert template_settings(OverlaydConfig(ip="10.1.2.3"), Settings()).ip == "10.1.2.3"


# -- a running overlayd ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("hostconfig")
    config = CONFIG | {"dhcp_reload": f"echo reload >> {tmp / 'reloads'}"}
    with start_stack(tmp, config) as running:
        yield running


async def test_overlayd_keeps_the_host_files_current(stack: Stack, tmp_path: Path) -> None:
    async with stack.registry_api() as registry:
        r = await registry.put(
            "/nodes/h01",
            json={
                "profiles": ["default"],
                "network_devices": {
                    "default": {"hwaddr": "AA:BB:CC:DD:EE:01", "ipaddr": "10.0.5.1"}
                },
            },
        )
        assert r.status_code == 201, r.text
    await settled(stack)
    host = stack.data / "host"
    conf = (host / "dnsmasq.conf").read_text()
    leases = (host / "dhcp-hosts").read_text().splitlines()
    assert "aa:bb:cc:dd:ee:01,10.0.5.1,h01,infinite" in leases
    assert f"dhcp-hostsfile={host.resolve() / 'dhcp-hosts'}" in conf.splitlines()
    assert f"http://10.0.0.254:{stack.overlayd_offset + 9873}/ipxe/${{mac}}" in conf
    assert "10.0.5.1 h01 h01-default" in (host / "hosts").read_text()
    assert "/opt 10.0.0.0/255.255.0.0(ro,sync)" in (host / "exports").read_text()
    done = dnsmasq_test(tmp_path, conf)
    assert done.returncode == 0, done.stderr
    reloads = (stack.data.parent / "reloads").read_text().split()

    async with stack.registry_api() as registry:
        body = {"network_devices": {"default": {"ipaddr": "10.0.5.9"}}}
        assert (await registry.patch("/nodes/h01", json=body)).status_code == 200
    await settled(stack)
    leases = (host / "dhcp-hosts").read_text().splitlines()
    assert "aa:bb:cc:dd:ee:01,10.0.5.9,h01,infinite" in leases
    assert (host / "dnsmasq.conf").read_text() == conf
    assert len((stack.data.parent / "reloads").read_text().split()) == len(reloads) + 1
