"""The shipped set as a whole: every overlay the default profile names exists and renders for
a bare node and for a node with every kind of device, and a wave of identical nodes shares
the blobs of everything that does not depend on the node (through the real renderer)."""

from __future__ import annotations

import gzip
import stat
import subprocess
from pathlib import Path

import pytest

from libs.common.models.node import NetDev, Node
from libs.common.models.site import TemplateSettings
from libs.common.nodes.defaults import default_profile
from libs.common.nodes.merge import merge_node
from libs.common.store.cas import ContentStore
from services.overlayd.engine.keys import HostKey, HostKeys
from services.overlayd.engine.sources import OverlaySources, ShippedOverlays
from services.overlayd.engine.wave_renderer import OverlayRenderer
from tests.overlayd.overlays.helpers import Cluster, four_nic_node, plain_node, settings

DEFAULTS = default_profile()
SHIPPED = [*DEFAULTS.system_overlay, *DEFAULTS.runtime_overlay, "syncuser", "systemd.networkd"]


def test_every_default_overlay_is_shipped() -> None:
    assert set(SHIPPED) <= set(ShippedOverlays().names())


@pytest.mark.parametrize("overlay", sorted(set(SHIPPED)))
def test_renders_for_a_bare_node_a_sparse_one_and_a_busy_one(overlay: str) -> None:
    sparse = Node(  # a device with an address and nothing else; the server has no netmask set
        name="sparse",
        network_devices={"lan": NetDev(ipaddr="10.0.0.9"), "x": NetDev(hwaddr="AA:BB:CC:DD:EE:FF")},
    )
    cluster = Cluster(
        nodes=[Node(name="bare", profiles=["default"]), sparse, four_nic_node()],
        settings=TemplateSettings(ip="10.0.0.1"),
    )
    for name in ("bare", "sparse", "n01"):
        files = cluster.render(overlay, name)
        for path, out in files.items():
            # No stray whitespace-only files from a template that printed nothing useful.
            assert out.kind != "file" or out.data.strip() or path.endswith("authorized_keys")


def unpack(blob: bytes, into: Path) -> Path:
    """A gzip'd newc archive unpacked by GNU cpio, as the kernel would see it."""
    into.mkdir(parents=True)
    subprocess.run(["cpio", "-idm", "--quiet"], input=gzip.decompress(blob), cwd=into, check=True)
    return into


async def test_identical_nodes_share_blobs(tmp_path: Path) -> None:
    nodes = [plain_node(f"n{i:03}", f"10.0.1.{i}", f"52:54:00:00:01:{i:02x}") for i in range(1, 41)]
    profiles = {"default": DEFAULTS}
    merged = [merge_node(n, profiles).node for n in nodes]
    keys = HostKeys(keys={"ed25519": HostKey(type="ed25519", private="K\n", public="P\n")})
    store = ContentStore(tmp_path / "cas")
    renderer = OverlayRenderer(
        OverlaySources(ShippedOverlays()),
        settings(ip="10.0.0.1"),
        keys,
        store,
        data_dir=tmp_path,
        ssh_dir=None,
    )
    results = await renderer.render_nodes(merged, merged, {})
    renders = [r for r in results.values() if not isinstance(r, Exception)]
    assert len(renders) == 40, results
    shared_names, own_names = renders[0].system_groups
    # What reads nothing of the node is one blob for all 40; the rest one blob per node.
    assert {"wwclient", "hosts", "ssh.host_keys"} <= set(shared_names)
    assert {"hostname", "wwinit", "fstab", "resolv"} <= set(own_names)
    assert sorted(shared_names + own_names) == sorted(DEFAULTS.system_overlay)
    assert len({r.system_digests[0] for r in renders}) == 1
    assert len({r.system_digests[1] for r in renders}) == 40
    first = results["n001"]
    assert not isinstance(first, Exception)
    own = unpack(await store.get_bytes(first.system_digests[1]), tmp_path / "own")
    assert stat.S_IMODE((own / "init").stat().st_mode) == 0o755
    assert "WWNAME='n001'" in (own / "warewulf/config").read_text().splitlines()
    assert (own / "etc/hostname").read_text().strip() == "n001"
    hosts = unpack(await store.get_bytes(first.system_digests[0]), tmp_path / "hosts")
    assert not (hosts / "etc/hostname").exists()
    assert "10.0.1.40 n040 n040-default n040-eth0" in (hosts / "etc/hosts").read_text().splitlines()
