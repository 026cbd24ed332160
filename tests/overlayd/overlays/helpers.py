"""Rendering the shipped overlays for tests: a cluster (nodes, profiles, settings, keys) and the
files one overlay renders for one node, with their modes, through the real overlay engine
(services/overlayd/engine: the shipped tree as overlayd loads it, the sandboxed environment,
the helpers), without a store: what `wolfctl overlay show --render` shows.
"""

from __future__ import annotations

import os
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from libs.common.models.node import NetDev, Node, Profile
from libs.common.models.site import NfsExport, TemplateSettings
from libs.common.nodes.defaults import default_profile
from libs.common.nodes.merge import merge_node
from services.overlayd.engine.compiled_overlay import CompiledOverlay, render_overlay
from services.overlayd.engine.context import node_view, settings_view
from services.overlayd.engine.helpers import HostFiles, ImageFiles
from services.overlayd.engine.sources import ShippedOverlays
from tests.needs import need_command

BUILD_TIME = "2026-11-25T12:00:00Z"


@dataclass(frozen=True)
class Output:
    """One rendered entry: a file's bytes, a symlink's target, or a directory."""

    kind: str
    data: bytes = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0

    @property
    def text(self) -> str:
        return self.data.decode()


def settings(**overrides: Any) -> TemplateSettings:
    base: dict[str, Any] = {
        "ip": "10.0.0.1",
        "netmask": "255.255.255.0",
        "network": "10.0.0.0",
        "dhcp_range": ["10.0.0.100", "10.0.0.199"],
    }
    return TemplateSettings(**{**base, **overrides})


def nfs(path: str, mount_options: str = "defaults", *, mount: bool = True) -> NfsExport:
    return NfsExport(path=path, mount_options=mount_options, mount=mount)


@dataclass
class Cluster:
    """What a render sees: every node, the profiles (Warewulf's default one included), the
    server's settings, host keys, the server's authorized keys, and the images' folder."""

    nodes: list[Node]
    profiles: dict[str, Profile] = field(default_factory=dict)
    settings: TemplateSettings = field(default_factory=settings)
    images: dict[str, dict[str, Any]] = field(default_factory=dict)
    keys: dict[str, dict[str, str]] = field(default_factory=dict)
    authorized_keys: list[str] = field(default_factory=list)
    images_dir: Path = Path("/nonexistent")
    shipped: ShippedOverlays = field(default_factory=ShippedOverlays)

    def __post_init__(self) -> None:
        self.profiles = {"default": default_profile(), **self.profiles}

    def merged(self, name: str) -> Node:
        node = next(n for n in self.nodes if n.name == name)
        return merge_node(node, self.profiles).node

    def render(self, overlay: str, node: str) -> dict[str, Output]:
        """Every entry the overlay gives this node, by path (relative, no leading slash);
        raises the engine's RenderError."""
        tree = self.shipped.get(overlay)
        assert tree is not None, f"no shipped overlay {overlay}"
        merged = self.merged(node)
        members = render_overlay(CompiledOverlay(tree), self._context(overlay, merged))
        return {m.path: _output(m.mode, m.data, m.uid, m.gid) for m in members}

    def _context(self, overlay: str, node: Node) -> dict[str, Any]:
        images = ImageFiles(self.images_dir)
        everyone = sorted((self.merged(n.name) for n in self.nodes), key=lambda n: n.name)

        def include_image(path: str, default: str | None = None) -> str:
            return images.read(node.image, path, default)

        return {
            "node": node_view(node),
            "nodes": [node_view(n) for n in everyone],
            "settings": settings_view(self.settings),
            "image": self.images.get(node.image) if node.image else None,
            "build_time": BUILD_TIME,
            "overlay": overlay,
            "keys": self.keys,
            "authorized_keys": self.authorized_keys,
            "include_host": HostFiles([Path("/etc"), Path("/root/.ssh")]).read,
            "include_image": include_image,
        }


def _output(mode: int, data: bytes, uid: int, gid: int) -> Output:
    kind = "dir" if stat.S_ISDIR(mode) else "symlink" if stat.S_ISLNK(mode) else "file"
    return Output(kind=kind, data=data, mode=stat.S_IMODE(mode), uid=uid, gid=gid)


# Cluster fixtures --------------------------------------------------------------------------


def four_nic_node(name: str = "n01", **fields: Any) -> Node:
    """A node with every kind of device: ethernet with IPv4, IPv6 and MTU 9000 (primary),
    infiniband, a bond of two members, a VLAN on the bond, and a device with onboot false."""
    return Node(
        name=name,
        profiles=["default"],
        cluster_name="hpc",
        image="rocky9",
        primary_network="default",
        network_devices={
            "default": NetDev(
                type="ethernet",
                device="eth0",
                hwaddr="AA:BB:CC:00:00:01",
                ipaddr="10.0.0.11",
                netmask="255.255.255.0",
                gateway="10.0.0.1",
                ipaddr6="fd00::11",
                prefixlen6=64,
                gateway6="fd00::1",
                mtu=9000,
            ),
            "ib": NetDev(
                type="infiniband",
                device="ib0",
                hwaddr="80:00:00:48:fe:80:00:00:00:00:00:00:00:11:22:33:44:55:66:77",
                ipaddr="10.10.0.11",
                netmask="255.255.0.0",
                mtu=4092,
            ),
            "bond": NetDev(
                type="bond",
                device="bond0",
                ipaddr="10.20.0.11",
                netmask="255.255.255.0",
                tags={"mode": "802.3ad", "miimon": "200"},
            ),
            "bondm1": NetDev(device="eth1", hwaddr="aa:bb:cc:00:00:02", tags={"master": "bond0"}),
            "bondm2": NetDev(device="eth2", hwaddr="aa:bb:cc:00:00:03", tags={"master": "bond0"}),
            "storage": NetDev(
                type="vlan",
                device="bond0.42",
                ipaddr="10.42.0.11",
                netmask="255.255.255.0",
                tags={"vlan_id": "42", "parent_device": "bond0"},
            ),
            "spare": NetDev(
                device="eth3", hwaddr="aa:bb:cc:00:00:04", ipaddr="10.30.0.11", onboot=False
            ),
        },
        **fields,
    )


def plain_node(name: str, ipaddr: str, hwaddr: str, **fields: Any) -> Node:
    return Node(
        name=name,
        profiles=["default"],
        network_devices={
            "default": NetDev(device="eth0", hwaddr=hwaddr, ipaddr=ipaddr, netmask="255.255.255.0")
        },
        **fields,
    )


def key_value(text: str) -> dict[str, str]:
    """KEY=value lines (ifcfg, /warewulf/config), comments and blank lines left out, one level
    of quotes removed."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not KEY=value: {line!r}"
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key] = value
    return out


def shellcheck(path: Path) -> None:
    """`shellcheck -s sh` must find nothing; missing shellcheck fails under CI=true."""
    need_command("shellcheck", "shellcheck")
    result = subprocess.run(
        ["shellcheck", "-s", "sh", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def unit_sections(text: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """A systemd unit-style file (.network, .netdev, .link) as its sections in order, each with
    its KEY=value pairs in order (keys repeat: Address=, DNS=)."""
    found: list[tuple[str, list[tuple[str, str]]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            found.append((line[1:-1], []))
            continue
        key, sep, value = line.partition("=")
        assert sep and found, f"not in a section or not KEY=value: {line!r}"
        found[-1][1].append((key, value))
    return found


def script(overlay: str, path: str) -> Path:
    """A shipped (static) file, e.g. script("wwinit", "init")."""
    return ShippedOverlays().root / overlay / path


def busybox_bin(folder: Path) -> Path:
    """A folder of busybox applet links, and nothing else: PATH for a busybox-only image."""
    busybox = need_command("busybox", "busybox-static")
    folder.mkdir(parents=True, exist_ok=True)
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True)
    for applet in applets.stdout.split():
        os.symlink(busybox, folder / applet)
    return folder
