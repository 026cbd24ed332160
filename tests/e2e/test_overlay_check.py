"""The issue's check: 200 nodes added by range, one given a MAC; its manifest in KV `boot`
with that MAC; its overlay blobs (from the store, unpacked with cpio) hold its hostname, an
/etc/hosts listing the other nodes and an executable /init; five address edits each reach the
manifest (median latency printed) and the new address is in its rendered files; the 200 nodes
share most of their system-overlay blobs.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from libs.common.models.overlay import BootManifest
from libs.common.nodes.defaults import default_profile

# The overlayd tests' helpers (tests/overlayd is not a package; e2e tests borrow from it).
from tests.overlayd.helpers import (
    Stack,
    all_caught_up,
    caught_up,
    following_boot,
    settled,
    start_stack,
    unpack,
)

NODE = "n042"
MAC = "AA:BB:CC:DD:EE:42"
NODES = 200
# Overlays whose files are the same on every node: one blob for the whole cluster.


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with start_stack(tmp_path_factory.mktemp("check")) as running:
        yield running


def hosts_names(root: Path) -> set[str]:
    names: set[str] = set()
    for line in (root / "etc/hosts").read_text().splitlines():
        fields = line.split("#", 1)[0].split()
        names.update(fields[1:])
    return names


def all_text(root: Path) -> str:
    return "\n".join(
        p.read_text(errors="replace") for p in root.rglob("*") if p.is_file() and not p.is_symlink()
    )


async def test_the_issue_check(stack: Stack, tmp_path: Path) -> None:
    system = default_profile().system_overlay
    async with following_boot(stack.nats_url) as boot, stack.registry_api() as registry:
        r = await registry.post(
            "/nodes:bulk",
            json={
                "names": f"n[001-{NODES:03d}]",
                "ipaddr": "10.0.0.1",
                "network_devices": {"default": {"device": "eth0", "netmask": "255.255.0.0"}},
            },
        )
        assert r.status_code == 201, r.text
        r = await registry.patch(
            f"/nodes/{NODE}", json={"network_devices": {"default": {"hwaddr": MAC}}}
        )
        assert r.status_code == 200, r.text
        manifest = await boot.manifest(NODE, lambda m: m.hwaddrs == [MAC.lower()])
        await boot.until(lambda found: len(found) == NODES)
        await settled(stack)
        manifest = await caught_up(boot, stack.nats_url, NODE)
        assert manifest.node == NODE
        # What every node shares, then the node's own files.
        assert len(manifest.system_digests) == 2
        assert manifest.runtime_digest

        root = unpack(stack.data, manifest.system_digests, tmp_path / "first")
        assert (root / "etc/hostname").read_text().strip() == NODE
        listed = hosts_names(root)
        others = {f"n{i:03d}" for i in range(1, NODES + 1)} - {NODE}
        assert others <= listed, sorted(others - listed)[:5]
        init = root / "init"
        assert init.is_file() and init.stat().st_mode & 0o111 == 0o111

        latencies = []
        for i in range(1, 6):
            address = f"10.0.50.{i}"
            before = boot.manifests[NODE].revision
            started = boot_clock()
            r = await registry.patch(
                f"/nodes/{NODE}", json={"network_devices": {"default": {"ipaddr": address}}}
            )
            assert r.status_code == 200, r.text
            edited = await boot.manifest(NODE, partial(newer, before))
            arrived = next(t for n, rev, t in boot.log if n == NODE and rev == edited.revision)
            latencies.append(arrived - started)
            files = unpack(stack.data, edited.system_digests, tmp_path / f"edit{i}")
            assert address in all_text(files), f"{address} is in none of {NODE}'s files"
            # Then every node's hosts file follows; nothing is left to do before the next edit.
            await settled(stack)
            latest = await caught_up(boot, stack.nats_url, NODE)
            hosts = unpack(stack.data, latest.system_digests, tmp_path / f"h{i}")
            assert address in (hosts / "etc/hosts").read_text()
        print(f"\nIP edit -> manifest in KV: median {statistics.median(latencies) * 1000:.1f} ms")
        print("  each: " + ", ".join(f"{t * 1000:.1f} ms" for t in latencies))

        manifests = await all_caught_up(boot, stack.nats_url)
        assert len(manifests) == NODES
        distinct = {d for m in manifests.values() for d in m.system_digests}
        print(
            f"distinct system-overlay blobs for {NODES} nodes: {len(distinct)} "
            f"(one archive per overlay would be {NODES * len(system)})"
        )
        # One archive all nodes share, and one of each node's own files.
        assert len({m.system_digests[0] for m in manifests.values()}) == 1
        assert len(distinct) == NODES + 1


def newer(revision: int, manifest: BootManifest) -> bool:
    return manifest.revision > revision


def boot_clock() -> float:
    import asyncio

    return asyncio.get_running_loop().time()
