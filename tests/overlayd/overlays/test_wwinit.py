"""Overlay wwinit: /warewulf/config as a shell reads it, and /init in its dry-run mode
(WWINIT_DRYRUN=1 prints what it would do) on a stand-in root (WWINIT_ROOT), under dash and
under busybox's sh."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from libs.common.models.node import NetDev, Node
from services.overlayd.engine.errors import RenderError
from tests.needs import need_command, need_root, unavailable
from tests.overlayd.overlays.helpers import (
    Cluster,
    busybox_bin,
    four_nic_node,
    script,
    settings,
    shellcheck,
)

INIT = script("wwinit", "init")


def two_nic_node(**fields: Any) -> Node:
    return Node(
        name="n07",
        profiles=["default"],
        image="rocky9",
        network_devices={
            "default": NetDev(
                device="eth0",
                hwaddr="52:54:00:00:00:07",
                ipaddr="10.0.0.17",
                netmask="255.255.0.0",
                gateway="10.0.0.1",
                mtu=9000,
            ),
            "data": NetDev(
                device="eth1",
                hwaddr="52:54:00:00:01:07",
                ipaddr="10.1.0.17",
                netmask="255.255.255.0",
                gateway="10.1.0.1",
                ipaddr6="fd00:1::17",
                prefixlen6=64,
            ),
        },
        **fields,
    )


def config_values(text: str, tmp_path: Path, names: list[str]) -> dict[str, str]:
    """The variables as `sh` sees them after sourcing the config."""
    path = tmp_path / "config"
    path.write_text(text)
    probe = "; ".join(f'printf "%s\\0" "${{{name}:-}}"' for name in names)
    out = subprocess.run(
        ["sh", "-c", f". {path}; {probe}"], capture_output=True, text=True, check=True
    ).stdout
    return dict(zip(names, out.split("\0")[:-1], strict=True))


def stand_in_root(
    tmp_path: Path, cluster: Cluster, node: str, nics: dict[str, str], *, modules: bool = True
) -> Path:
    """What /init reads on a node: its config, the kernel command line, the NICs the kernel
    found (name → MAC), the image's modules, an init.d script, the agent and an init."""
    root = tmp_path / "root"
    files = cluster.render("wwinit", node)
    (root / "warewulf/init.d").mkdir(parents=True)
    (root / "warewulf/config").write_bytes(files["warewulf/config"].data)
    (root / "proc").mkdir()
    booted_from = cluster.merged(node).network_devices["default"].hwaddr
    (root / "proc/cmdline").write_text(f"quiet wwid={booted_from} net.ifnames=1\n")
    for name, mac in nics.items():
        (root / "sys/class/net" / name).mkdir(parents=True)
        (root / "sys/class/net" / name / "address").write_text(mac + "\n")
    if modules:
        folder = root / "lib/modules" / os.uname().release
        folder.mkdir(parents=True)
        (folder / "modules.dep").write_text(
            "kernel/drivers/net/virtio_net.ko.xz: kernel/net/core/failover.ko.xz\n"
            "kernel/drivers/net/ethernet/intel/e1000e/e1000e.ko.xz:\n"
        )
    (root / "warewulf/init.d/10-first").write_text("echo first\n")
    for executable in ("warewulf/wwclient", "sbin/init"):
        (root / executable).parent.mkdir(parents=True, exist_ok=True)
        (root / executable).write_text("#!/bin/sh\n")
        os.chmod(root / executable, 0o755)
    return root


def dry_run(root: Path, shell: list[str], path: str | None = None) -> list[str]:
    env = {**os.environ, "WWINIT_DRYRUN": "1", "WWINIT_ROOT": str(root), "WWINIT_WAIT": "0"}
    if path is not None:
        env["PATH"] = path
    done = subprocess.run(
        [*shell, str(INIT), "single"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    return done.stdout.splitlines()


def actions(lines: list[str]) -> list[str]:
    """What /init would change, without the mounts (they depend on the machine running it)."""
    return [
        line.removeprefix("wwinit: ")
        for line in lines
        if line.startswith("wwinit: would") and " mount " not in line and "mkdir" not in line
    ]


def test_init_is_posix_sh() -> None:
    subprocess.run(["sh", "-n", str(INIT)], check=True)
    shellcheck(INIT)


def test_init_is_executable_and_config_private() -> None:
    files = Cluster(nodes=[two_nic_node()]).render("wwinit", "n07")
    assert files["init"].mode == 0o755
    assert files["init"].data == INIT.read_bytes()  # a static file: one blob for every node
    assert files["warewulf/config"].mode == 0o600  # holds the asset key


def test_config_as_the_shell_reads_it(tmp_path: Path) -> None:
    node = four_nic_node(asset_key="it's-42", tags={"agent.interval": "15", "module": "mlx5_ib"})
    node.network_devices["ib"].tags = {"module": "ib_ipoib, mlx5_ib"}
    text = Cluster(nodes=[node]).render("wwinit", "n01")["warewulf/config"].text
    names = [
        "WWNAME", "WWCLUSTER", "WWIMAGE", "WWINIT", "WWROOT", "WWID", "WWBOOTD", "WWINTERVAL",
        "WWSECURE", "WWASSETKEY", "WWNET_MODULES", "WWNET_COUNT", "WWBOOTD_TLS",
    ]  # fmt: skip
    assert config_values(text, tmp_path, names) == {
        "WWNAME": "n01",
        "WWCLUSTER": "hpc",
        "WWIMAGE": "rocky9",
        "WWINIT": "/sbin/init",
        "WWROOT": "initramfs",
        "WWID": "aa:bb:cc:00:00:01",  # the primary network's MAC, lower case
        "WWBOOTD": "http://10.0.0.1:9873",
        "WWINTERVAL": "15",
        "WWSECURE": "true",
        "WWASSETKEY": "it's-42",
        "WWNET_MODULES": "mlx5_ib ib_ipoib",
        "WWNET_COUNT": "7",
        "WWBOOTD_TLS": "",
    }
    fields = ["NAME", "TYPE", "DEVICE", "HWADDR", "ONBOOT", "MTU", "IPADDR", "PREFIX"]
    fields += ["GATEWAY", "IPADDR6", "PREFIX6", "GATEWAY6", "MASTER", "PARENT", "VLANID"]
    fields += ["BONDMODE", "MIIMON"]
    first = config_values(text, tmp_path, [f"WWNET_1_{f}" for f in fields])
    assert first == {  # the primary network comes first
        "WWNET_1_NAME": "default",
        "WWNET_1_TYPE": "ethernet",
        "WWNET_1_DEVICE": "eth0",
        "WWNET_1_HWADDR": "aa:bb:cc:00:00:01",
        "WWNET_1_ONBOOT": "true",
        "WWNET_1_MTU": "9000",
        "WWNET_1_IPADDR": "10.0.0.11",
        "WWNET_1_PREFIX": "24",
        "WWNET_1_GATEWAY": "10.0.0.1",
        "WWNET_1_IPADDR6": "fd00::11",
        "WWNET_1_PREFIX6": "64",
        "WWNET_1_GATEWAY6": "fd00::1",
        "WWNET_1_MASTER": "",
        "WWNET_1_PARENT": "",
        "WWNET_1_VLANID": "",
        "WWNET_1_BONDMODE": "",
        "WWNET_1_MIIMON": "",
    }
    by_name = {
        config_values(text, tmp_path, [f"WWNET_{n}_NAME"])[f"WWNET_{n}_NAME"]: n
        for n in range(1, 8)
    }
    bond = config_values(text, tmp_path, [f"WWNET_{by_name['bond']}_{f}" for f in fields])
    assert {k.split("_", 2)[2]: v for k, v in bond.items() if v} == {
        "NAME": "bond",
        "TYPE": "bond",
        "DEVICE": "bond0",
        "ONBOOT": "true",
        "IPADDR": "10.20.0.11",
        "PREFIX": "24",
        "BONDMODE": "802.3ad",
        "MIIMON": "200",
    }
    vlan = config_values(text, tmp_path, [f"WWNET_{by_name['storage']}_{f}" for f in fields])
    assert vlan[f"WWNET_{by_name['storage']}_PARENT"] == "bond0"
    assert vlan[f"WWNET_{by_name['storage']}_VLANID"] == "42"
    spare = config_values(text, tmp_path, [f"WWNET_{by_name['spare']}_ONBOOT"])
    assert list(spare.values()) == ["false"]


CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def test_under_tls_the_agent_gets_bootds_https_port_and_the_ca(tmp_path: Path) -> None:
    tls = settings(bootd_tls_port=10875, ca_pem=CA_PEM)
    cluster = Cluster(nodes=[two_nic_node()], settings=tls)
    text = cluster.render("wwinit", "n07")["warewulf/config"].text
    found = config_values(text, tmp_path, ["WWBOOTD", "WWBOOTD_TLS"])
    assert found == {"WWBOOTD": "http://10.0.0.1:9873", "WWBOOTD_TLS": "https://10.0.0.1:10875"}
    ca = cluster.render("wwclient", "n07")["warewulf/ca.pem"]
    assert ca.data == CA_PEM.encode()  # exactly the PEM: curl --cacert reads it


def test_without_tls_there_is_no_https_port_and_no_ca(tmp_path: Path) -> None:
    cluster = Cluster(nodes=[two_nic_node()])
    text = cluster.render("wwinit", "n07")["warewulf/config"].text
    assert config_values(text, tmp_path, ["WWBOOTD_TLS"]) == {"WWBOOTD_TLS": ""}
    assert "warewulf/ca.pem" not in cluster.render("wwclient", "n07")


def test_interval_defaults_to_the_servers_and_a_bad_tag_fails(tmp_path: Path) -> None:
    text = Cluster(nodes=[two_nic_node()]).render("wwinit", "n07")["warewulf/config"].text
    assert config_values(text, tmp_path, ["WWINTERVAL"]) == {"WWINTERVAL": "60"}
    with pytest.raises(RenderError, match=r"agent\.interval of node n07 must be a whole number"):
        Cluster(nodes=[two_nic_node(tags={"agent.interval": "soon"})]).render("wwinit", "n07")


@pytest.mark.parametrize("shell", ["dash", "busybox"])
def test_dry_run_two_interfaces(tmp_path: Path, shell: str) -> None:
    cluster = Cluster(nodes=[two_nic_node()])
    # The kernel named them ens3 and ens4; the registry says eth0 and eth1.
    root = stand_in_root(
        tmp_path, cluster, "n07", {"ens3": "52:54:00:00:00:07", "ens4": "52:54:00:00:01:07"}
    )
    if shell == "busybox":
        bin_dir = busybox_bin(tmp_path / "bin")
        lines = dry_run(root, [str(bin_dir / "sh")], path=str(bin_dir))
    else:
        lines = dry_run(root, ["sh"])
    assert "wwinit: node n07, image rocky9, booted from 52:54:00:00:00:07" in lines
    assert actions(lines) == [
        # The image has virtio_net and e1000e of the common NIC drivers: those are loaded.
        "would run: modprobe virtio_net",
        "would run: modprobe e1000e",
        "would run: ip link set dev lo up",
        "would run: ip link set dev ens3 down",
        "would run: ip link set dev ens3 name eth0",
        "would run: ip link set dev eth0 mtu 9000",
        "would run: ip addr add 10.0.0.17/16 dev eth0",
        "would run: ip link set dev eth0 up",
        "would run: ip route add default via 10.0.0.1 dev eth0",  # the primary's gateway wins
        "would run: ip link set dev ens4 down",
        "would run: ip link set dev ens4 name eth1",
        "would run: ip addr add 10.1.0.17/24 dev eth1",
        "would run: ip link set dev eth1 up",
        "would run: ip -6 addr add fd00:1::17/64 dev eth1",
        "would write n07 to /proc/sys/kernel/hostname",
        f"would run: sh {root}/warewulf/init.d/10-first",
        "would run: setsid /warewulf/wwclient &",
        "would exec /sbin/init single",  # the kernel's arguments go on to init
    ]
    assert "wwinit: network default: eth0 up 10.0.0.17 mtu 9000" in lines
    assert "wwinit: network data: eth1 up 10.1.0.17 fd00:1::17" in lines


def test_dry_run_bond_vlan_infiniband_and_a_device_left_down(tmp_path: Path) -> None:
    node = four_nic_node()
    node.network_devices["ib"].hwaddr = "00:11:22:33:44:55:66:77"  # the port GUID only
    cluster = Cluster(nodes=[node])
    nics = {
        "eth0": "aa:bb:cc:00:00:01",
        "eth1": "aa:bb:cc:00:00:02",
        "eth2": "aa:bb:cc:00:00:03",
        "eth3": "aa:bb:cc:00:00:04",
        "ib0": "80:00:00:48:fe:80:00:00:00:00:00:00:00:11:22:33:44:55:66:77",
    }
    lines = dry_run(stand_in_root(tmp_path, cluster, "n01", nics), ["sh"])
    done = actions(lines)
    assert "wwinit: network spare: onboot is false, left down" in lines
    assert not [line for line in done if "eth3" in line]
    assert "would run: ip addr add 10.10.0.11/16 dev ib0" in done
    # Physical devices first; the bond takes its members down, then the VLAN goes on top.
    bond_part = done[done.index("would run: modprobe bonding") :]
    assert bond_part == [
        "would run: modprobe bonding",
        "would write +bond0 to /sys/class/net/bonding_masters",
        "would write 802.3ad to /sys/class/net/bond0/bonding/mode",
        "would write 200 to /sys/class/net/bond0/bonding/miimon",
        "would run: ip link set dev eth1 down",
        "would write +eth1 to /sys/class/net/bond0/bonding/slaves",
        "would run: ip link set dev eth2 down",
        "would write +eth2 to /sys/class/net/bond0/bonding/slaves",
        "would run: ip addr add 10.20.0.11/24 dev bond0",
        "would run: ip link set dev bond0 up",
        "would run: modprobe 8021q",
        "would run: ip link add link bond0 name bond0.42 type vlan id 42",
        "would run: ip addr add 10.42.0.11/24 dev bond0.42",
        "would run: ip link set dev bond0.42 up",
        "would write n01 to /proc/sys/kernel/hostname",
        f"would run: sh {tmp_path}/root/warewulf/init.d/10-first",
        "would run: setsid /warewulf/wwclient &",
        "would exec /sbin/init single",
    ]
    # Members carry no address of their own.
    assert not [line for line in done if "addr add" in line and ("eth1" in line or "eth2" in line)]


def test_named_modules_are_loaded_instead_of_the_common_ones(tmp_path: Path) -> None:
    cluster = Cluster(nodes=[two_nic_node(tags={"module": "mlx5_core ib_ipoib"})])
    root = stand_in_root(tmp_path, cluster, "n07", {"eth0": "52:54:00:00:00:07"})
    modprobes = [line for line in actions(dry_run(root, ["sh"])) if "modprobe" in line]
    assert modprobes == ["would run: modprobe mlx5_core", "would run: modprobe ib_ipoib"]


@pytest.mark.parametrize("shell", ["dash", "busybox"])
def test_nic_drivers_are_found_by_modalias(tmp_path: Path, shell: str) -> None:
    """Found by the first real boot (QEMU, Debian's cloud kernel): a virtio NIC needs its PCI
    driver (virtio_pci) before virtio_net, and the list of common drivers had only virtio_net,
    so no interface came up. /init loads what each network-class PCI device's modalias names,
    then each virtio network device's, as udev would; the list is the fallback."""
    cluster = Cluster(nodes=[two_nic_node()])
    nics = {"eth0": "52:54:00:00:00:07", "eth1": "52:54:00:00:01:07"}
    root = stand_in_root(tmp_path, cluster, "n07", nics)
    devices = {
        "0000:00:02.0": ("0x030000", "pci:v00001234d00001111sv00001AF4sd00001100bc03sc00i00"),
        "0000:00:03.0": ("0x020000", "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00"),
        "0000:00:04.0": ("0x020000", "pci:v00008086d000010D3sv00008086sd00000000bc02sc00i00"),
    }
    for address, (pci_class, alias) in devices.items():
        folder = root / "sys/bus/pci/devices" / address
        folder.mkdir(parents=True)
        (folder / "class").write_text(pci_class + "\n")
        (folder / "modalias").write_text(alias + "\n")
    for name, alias in (
        ("virtio0", "virtio:d00000001v00001AF4"),
        ("virtio1", "virtio:d00000002v00001AF4"),
    ):
        (root / "sys/bus/virtio/devices" / name).mkdir(parents=True)
        (root / "sys/bus/virtio/devices" / name / "modalias").write_text(alias + "\n")
    if shell == "busybox":
        bin_dir = busybox_bin(tmp_path / "bin")
        lines = dry_run(root, [str(bin_dir / "sh")], path=str(bin_dir))
    else:
        lines = dry_run(root, ["sh"])
    modprobes = [line for line in actions(lines) if "modprobe" in line]
    assert modprobes == [
        f"would run: modprobe -q {devices['0000:00:03.0'][1]}",  # not the display adapter
        f"would run: modprobe -q {devices['0000:00:04.0'][1]}",
        "would run: modprobe -q virtio:d00000001v00001AF4",  # the NIC, not the virtio disk
    ]
    assert "wwinit: loading the driver of network device 0000:00:03.0" in lines


def test_common_drivers_follow_when_the_modalias_brought_no_interface(tmp_path: Path) -> None:
    cluster = Cluster(nodes=[two_nic_node()])
    root = stand_in_root(tmp_path, cluster, "n07", {})  # the kernel shows no interface yet
    folder = root / "sys/bus/pci/devices/0000:00:03.0"
    folder.mkdir(parents=True)
    (folder / "class").write_text("0x020000\n")
    (folder / "modalias").write_text("pci:v00008086d0000ABCDsv00008086sd00000000bc02sc00i00\n")
    modprobes = [line for line in actions(dry_run(root, ["sh"])) if "modprobe" in line]
    assert modprobes == [
        "would run: modprobe -q pci:v00008086d0000ABCDsv00008086sd00000000bc02sc00i00",
        "would run: modprobe virtio_net",
        "would run: modprobe e1000e",
    ]


def test_a_missing_nic_or_init_is_said_and_a_shell_started(tmp_path: Path) -> None:
    cluster = Cluster(nodes=[two_nic_node(init="/sbin/nonexistent")])
    root = stand_in_root(tmp_path, cluster, "n07", {"eth0": "52:54:00:00:00:07"})
    lines = dry_run(root, ["sh"])
    assert "wwinit: network data: no interface with MAC 52:54:00:00:01:07" in lines
    assert "wwinit: ERROR: /sbin/nonexistent is not in the image: starting a shell" in lines
    assert lines[-1] == "wwinit: would exec /bin/sh"


def test_root_tmpfs_copies_the_image_and_switches_root(tmp_path: Path) -> None:
    cluster = Cluster(nodes=[two_nic_node(root="tmpfs")])
    root = stand_in_root(tmp_path, cluster, "n07", {"eth0": "52:54:00:00:00:07"})
    done = [line.removeprefix("wwinit: ") for line in dry_run(root, ["sh"])]
    assert "would run: mount -t tmpfs -o mode=0755 wwroot /newroot" in done
    assert "would run: mount -o move /proc /newroot/proc" in done
    assert "would exec switch_root /newroot /init" in done
    assert done.index("would exec switch_root /newroot /init") < done.index(
        "would run: ip link set dev lo up"
    )


@pytest.mark.parametrize("shell", ["dash", "busybox"])
def test_init_configures_the_network_for_real(tmp_path: Path, shell: str) -> None:
    """/init for real in its own network, UTS and mount namespaces: two veth devices stand in
    for the NICs (named ens3 and ens4 by the kernel, with the node's MACs)."""
    need_root("a real /init run in namespaces")
    need_command("unshare", "util-linux")
    ip = need_command("ip", "iproute2")
    probe = subprocess.run(
        ["unshare", "--net", "--uts", "--mount", ip, "link", "add", "t0", "type", "veth"],
        capture_output=True,
        check=False,
    )
    if probe.returncode != 0:
        unavailable(f"no network namespace with veth here: {probe.stderr.decode().strip()}")
    cluster = Cluster(nodes=[two_nic_node()])
    root = stand_in_root(tmp_path, cluster, "n07", {}, modules=False)
    (root / "sys").symlink_to("/sys")  # the namespace's own sysfs, mounted below
    os.mkfifo(root / "agent.fifo")
    # The agent tells the fifo it started; init waits for that, then shows what /init did.
    (root / "warewulf/wwclient").write_text(f'#!/bin/sh\necho "agent $WWID" >{root}/agent.fifo\n')
    (root / "sbin/init").write_text(
        f'#!/bin/sh\nread -r line <{root}/agent.fifo\necho "$line"\necho "args $*"\n'
        f"hostname\n{ip} -o link\n{ip} -o addr\n{ip} route\n"
    )
    if shell == "busybox":
        bin_dir = busybox_bin(tmp_path / "bin")
        run_init = f"PATH={bin_dir} exec {bin_dir}/sh {INIT} single"
    else:
        run_init = f"exec sh {INIT} single"
    setup = (
        "set -e; mount -t sysfs sysfs /sys; "
        f"{ip} link add ens3 type veth peer name peer3; "
        f"{ip} link set dev ens3 address 52:54:00:00:00:07; "
        f"{ip} link add ens4 type veth peer name peer4; "
        f"{ip} link set dev ens4 address 52:54:00:00:01:07; "
    )
    done = subprocess.run(
        ["unshare", "--net", "--uts", "--mount", "sh", "-c", setup + run_init],
        env={**os.environ, "WWINIT_ROOT": str(root), "WWINIT_WAIT": "5"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout.splitlines()
    assert "agent 52:54:00:00:00:07" in out  # started, with the MAC it booted from
    assert "args single" in out
    assert "n07" in out  # the hostname
    assert "wwinit: network default: eth0 up 10.0.0.17 mtu 9000" in out
    links = {line.split(":")[1].strip().split("@")[0]: line for line in out if ": <" in line}
    assert "mtu 9000" in links["eth0"] and "52:54:00:00:00:07" in links["eth0"]
    assert "52:54:00:00:01:07" in links["eth1"]
    assert "ens3" not in links and "ens4" not in links  # renamed
    addresses = [line.split()[1:4] for line in out if " inet" in line]
    assert ["eth0", "inet", "10.0.0.17/16"] in addresses
    assert ["eth1", "inet", "10.1.0.17/24"] in addresses
    assert ["eth1", "inet6", "fd00:1::17/64"] in addresses
    assert any(line.startswith("default via 10.0.0.1 dev eth0") for line in out)
