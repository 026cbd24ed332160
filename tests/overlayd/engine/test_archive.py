"""Archives: deterministic bytes, one blob for what nodes share, each content compressed once,
runtime overlays combined, and a wave that only renders what changed."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import os
import stat
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from libs.common.formats.newc import Member
from libs.common.models.node import Node
from libs.common.store.cas import TEMP_PREFIX, ContentStore
from services.overlayd.engine import archive as archive_module
from services.overlayd.engine import worker as worker_module
from services.overlayd.engine.archive import ArchivePacker, pack_bytes
from services.overlayd.engine.compiled_overlay import CompiledOverlay
from tests.overlayd.engine.helpers import make_renderer, node, rendered, unpack, write_overlay

HOSTS = "{% for n in nodes %}{{ n.network_devices.default.ipaddr }} {{ n.name }}\n{% endfor %}"


@pytest.fixture
def overlays(tmp_path: Path) -> Path:
    root = tmp_path / "overlays"
    write_overlay(root, "hostname", {"etc/hostname.j2": "{{ node.name }}\n"})
    write_overlay(root, "hosts", {"etc/hosts.j2": HOSTS})
    write_overlay(
        root,
        "agent",
        {"warewulf/agent": "#!/bin/sh\nsleep {{ settings.update_interval }}\n"},
        meta={"warewulf/agent": {"mode": "0755"}},
    )
    write_overlay(root, "keys", {"etc/ssh/key.j2": "{{ keys.ed25519.private }}"})
    return root


def cluster(count: int) -> list[Node]:
    return [
        node(
            f"n{i:04d}",
            system=["hostname", "hosts", "agent", "keys"],
            runtime=["hosts", "agent"],
            ip=f"10.0.{i // 250}.{i % 250 + 1}",
        )
        for i in range(count)
    ]


async def test_same_inputs_give_the_same_bytes(
    data_dir: Path, overlays: Path, tmp_path: Path
) -> None:
    nodes = cluster(3)
    first = await make_renderer(data_dir, overlays).render_nodes(nodes, nodes, {})
    # A fresh renderer on another store: nothing remembered, same digests.
    other = make_renderer(tmp_path / "other", overlays)
    second = await other.render_nodes(nodes, nodes, {})
    assert first == second
    blob = other.store.path(rendered(second["n0000"]).system_digests[0]).read_bytes()
    assert blob[:3] == b"\x1f\x8b\x08"
    assert blob[4:8] == b"\0\0\0\0"  # gzip mtime 0
    raw = gzip.decompress(blob)
    assert b"0000000000000000" in raw[:110]  # newc: ino 1, mtime 0 ...
    assert raw[46:54] == b"00000000"  # the first member's mtime field


async def test_a_thousand_nodes_share_what_does_not_depend_on_the_node(
    data_dir: Path, overlays: Path, tmp_path: Path
) -> None:
    nodes = cluster(1000)
    renderer = make_renderer(data_dir, overlays)
    results = {k: rendered(v) for k, v in (await renderer.render_nodes(nodes, nodes, {})).items()}
    assert {tuple(map(tuple, r.system_groups)) for r in results.values()} == {
        (("hosts", "agent", "keys"), ("hostname",))
    }
    shared = {r.system_digests[0] for r in results.values()}
    own = {r.system_digests[1] for r in results.values()}
    assert len(shared) == 1 and len(own) == 1000
    assert len({r.runtime_digest for r in results.values()}) == 1
    stored = set(renderer.store.iter_digests())
    assert stored == shared | own | {results["n0000"].runtime_digest}
    root = unpack(renderer.store, shared.pop(), tmp_path / "shared")
    lines = (root / "etc/hosts").read_text().splitlines()
    assert lines[0] == "10.0.0.1 n0000" and len(lines) == 1000
    assert stat.S_IMODE(os.stat(root / "warewulf/agent").st_mode) == 0o755
    assert not (root / "etc/hostname").exists()
    mine = unpack(renderer.store, results["n0007"].system_digests[1], tmp_path / "own")
    assert (mine / "etc/hostname").read_text() == "n0007\n"


async def test_the_runtime_archive_combines_overlays_later_ones_winning(
    data_dir: Path, tmp_path: Path
) -> None:
    root = tmp_path / "overlays"
    write_overlay(root, "one", {"etc/a": "from one\n", "etc/only-one": "1\n"})
    write_overlay(root, "two", {"etc/a": "from two\n", "etc/only-two.j2": "{{ node.name }}\n"})
    renderer = make_renderer(data_dir, root)
    n = node("n1", system=[], runtime=["one", "two"])
    done = rendered((await renderer.render_nodes([n], [n], {}))["n1"])
    assert done.system_digests == []
    out = unpack(renderer.store, done.runtime_digest, tmp_path / "rt")
    assert (out / "etc/a").read_text() == "from two\n"
    assert (out / "etc/only-one").read_text() == "1\n"
    assert (out / "etc/only-two").read_text() == "n1\n"


async def test_two_system_archives_keep_the_node_order(data_dir: Path, tmp_path: Path) -> None:
    """Unpacked shared first then own, the files are those of the overlays merged in the
    node's order: a later overlay wins whether it is shared or the node's own."""
    root = tmp_path / "overlays"
    write_overlay(root, "base", {"etc/issue": "base\n", "etc/motd": "base\n"})
    write_overlay(
        root, "mine", {"etc/issue.j2": "{{ node.name }}\n", "etc/motd.j2": "{{ node.name }}\n"}
    )
    write_overlay(root, "site", {"etc/motd": "site\n"})
    renderer = make_renderer(data_dir, root)
    n = node("n1", system=["base", "mine", "site"], runtime=[])
    done = rendered((await renderer.render_nodes([n], [n], {}))["n1"])
    assert done.system_groups == [["base", "site"], ["mine"]]
    out = tmp_path / "root"
    for digest in done.system_digests:  # as the kernel unpacks initrds: later ones overwrite
        unpack(renderer.store, digest, out)
    assert (out / "etc/issue").read_text() == "n1\n"  # mine after base
    assert (out / "etc/motd").read_text() == "site\n"  # site after mine
    own = unpack(renderer.store, done.system_digests[1], tmp_path / "own")
    assert not (own / "etc/motd").exists()


async def test_each_distinct_content_is_compressed_once(
    data_dir: Path, overlays: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = archive_module.gzip_bytes

    def counting(data: bytes) -> bytes:
        calls.append(len(data))
        return real(data)

    monkeypatch.setattr(archive_module, "gzip_bytes", counting)
    nodes = cluster(50)
    renderer = make_renderer(data_dir, overlays)
    await renderer.render_nodes(nodes, nodes, {})
    # 50 nodes' own archives (their hostname) + one shared archive + one runtime archive.
    assert len(calls) == 52
    calls.clear()
    # A comment edit changes a node's view, so hosts renders again: same bytes, no gzip.
    nodes[3] = node(
        "n0003",
        system=nodes[3].system_overlay,
        runtime=nodes[3].runtime_overlay,
        ip="10.0.0.4",
        comment="rack 2",
    )
    again = await renderer.render_nodes(nodes, nodes, {})
    assert calls == []
    assert rendered(again["n0003"]).system_digests[0] == rendered(again["n0001"]).system_digests[0]


async def test_an_unchanged_wave_renders_nothing(
    data_dir: Path, overlays: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    renders: list[str] = []
    real = worker_module.render_overlay

    def counting(compiled: CompiledOverlay, context: Mapping[str, Any]) -> list[Member]:
        renders.append(compiled.name)
        return real(compiled, context)

    monkeypatch.setattr(worker_module, "render_overlay", counting)
    nodes = cluster(20)
    renderer = make_renderer(data_dir, overlays)
    first = await renderer.render_nodes(nodes, nodes, {})
    assert sorted(set(renders)) == ["agent", "hostname", "hosts", "keys"]
    assert renders.count("hostname") == 20 and renders.count("hosts") == 1
    renders.clear()
    assert await renderer.render_nodes(nodes, nodes, {}) == first
    assert renders == []
    # One node's address: its hostname overlay reads `node`, so it renders; hosts reads
    # `nodes`, so it renders once; the agent and keys read neither.
    nodes[5] = node(
        "n0005", system=nodes[5].system_overlay, runtime=nodes[5].runtime_overlay, ip="10.9.9.9"
    )
    changed = await renderer.render_nodes([nodes[5]], nodes, {})
    assert sorted(renders) == ["hostname", "hosts"]
    before, after = rendered(first["n0005"]), rendered(changed["n0005"])
    assert after.system_digests[0] != before.system_digests[0]  # hosts, in the shared archive
    assert after.system_digests[1] == before.system_digests[1]  # its hostname: the same text


async def test_defer_all_nodes_keeps_the_last_hosts_archive(data_dir: Path, overlays: Path) -> None:
    nodes = cluster(5)
    renderer = make_renderer(data_dir, overlays)
    first = rendered((await renderer.render_nodes(nodes, nodes, {}))["n0002"])
    nodes[2] = node(
        "n0002", system=nodes[2].system_overlay, runtime=nodes[2].runtime_overlay, ip="10.7.7.7"
    )
    fast = rendered(
        (await renderer.render_nodes([nodes[2]], nodes, {}, defer_all_nodes=True))["n0002"]
    )
    assert fast.deferred == ["system", "runtime"]
    assert fast.system_digests[0] == first.system_digests[0]  # hosts kept
    assert fast.system_digests[1] == first.system_digests[1]  # its hostname did not change
    full = rendered((await renderer.render_nodes([nodes[2]], nodes, {}))["n0002"])
    assert full.deferred == []
    assert full.system_digests[0] != first.system_digests[0]
    assert full.runtime_digest != first.runtime_digest


async def test_put_many_stores_blobs_with_nothing_left_behind(data_dir: Path) -> None:
    store = ContentStore(data_dir / "cas")
    existing = await store.put_bytes(b"already here")
    blobs = [b"one", b"two", b"one", b"already here"]
    digests = await store.put_many(blobs)
    assert digests == [hashlib.sha256(b).hexdigest() for b in blobs]
    assert digests[3] == existing
    for blob, digest in zip(blobs, digests, strict=True):
        assert store.path(digest).read_bytes() == blob
        assert stat.S_IMODE(os.stat(store.path(digest)).st_mode) == 0o600
    assert not [p for p in (data_dir / "cas").rglob(f"{TEMP_PREFIX}*")]
    assert sorted(store.iter_digests()) == sorted(set(digests))


def test_the_packer_remembers_only_committed_blobs() -> None:
    packer = ArchivePacker()
    members = [Member(path="etc/x", mode=stat.S_IFREG | 0o644, data=b"x\n")]
    failed_wave: dict[bytes, str] = {}
    digest, blob = packer.pack(members, failed_wave)
    assert blob == pack_bytes(members)
    assert blob is not None and digest == hashlib.sha256(blob).hexdigest()
    assert packer.pack(members, failed_wave) == (digest, None)  # on its way: not again
    next_wave: dict[bytes, str] = {}
    assert packer.pack(members, next_wave)[1] is not None  # the wave failed: written again
    packer.commit(next_wave)
    assert packer.pack(members, {}) == (digest, None)


async def test_a_failed_write_forgets_the_wave(
    data_dir: Path, overlays: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nodes = cluster(3)
    renderer = make_renderer(data_dir, overlays)
    real = renderer.store.put_many

    async def full(blobs: list[bytes]) -> list[str]:
        raise OSError(28, "no space left on the device")

    monkeypatch.setattr(renderer.store, "put_many", full)
    with pytest.raises(OSError, match="no space"):
        await renderer.render_nodes(nodes, nodes, {})
    monkeypatch.setattr(renderer.store, "put_many", real)
    # Nothing of the failed wave is taken as stored: every blob is written now.
    results = await renderer.render_nodes(nodes, nodes, {})
    for result in results.values():
        for digest in [*rendered(result).system_digests, rendered(result).runtime_digest]:
            assert renderer.store.exists(digest)


async def test_a_cancelled_wave_waits_for_its_thread_and_leaves_nothing_half_done(
    data_dir: Path, overlays: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started, release = threading.Event(), threading.Event()
    finished: list[bool] = []
    real = worker_module.RenderWorker.render_chunk

    def slow(self: worker_module.RenderWorker, *args: Any) -> Any:
        started.set()
        release.wait(10)
        result = real(self, *args)
        finished.append(True)
        return result

    monkeypatch.setattr(worker_module.RenderWorker, "render_chunk", slow)
    nodes = cluster(10)
    renderer = make_renderer(data_dir, overlays)
    wave = asyncio.create_task(renderer.render_nodes(nodes, nodes, {}))
    await asyncio.to_thread(started.wait, 10)
    wave.cancel()
    # The cancelled wave does not end while its thread is still at work.
    done, _ = await asyncio.wait({wave}, timeout=0.3)
    assert not done
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await wave
    assert finished == [True]
    monkeypatch.setattr(worker_module.RenderWorker, "render_chunk", real)
    results = await renderer.render_nodes(nodes, nodes, {})
    for result in results.values():
        for digest in [*rendered(result).system_digests, rendered(result).runtime_digest]:
            assert renderer.store.exists(digest)
