"""A full disk under the store: a real `wolfpack up` whose DATA/cas is a small tmpfs, filled to
the last byte. An image build and an overlay render fail cleanly (the job's `failed` event and
the node's `render_failed` name the store and "no space left"; an upload and a requested render
get 507), no partial blob appears, every stored blob stays byte-identical, the node keeps its
last good manifest; once space is freed overlayd renders the node by itself and the next build
succeeds.

NATS keeps its JetStream store in DATA/nats, outside that tmpfs; the last test gives NATS a
full disk of its own, and `wolfpack up`'s keeper restarts it once there is room
(docs/reliability.md, "Disk full"). Needs root to mount the tmpfs.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Final

import httpx
import nats.errors
import pytest

from libs.common import names
from libs.common.bus.server import NatsServer, free_port
from libs.common.models.node import NetDev, Node
from libs.common.models.overlay import RenderedEvent
from libs.common.settings import Settings
from libs.common.site.config import OverlaydConfig, template_settings
from libs.common.site.hostconfig import HostConfig, HostWriter
from libs.common.store.cas import TEMP_PREFIX, is_digest
from libs.runtime.natskeeper import keep_running
from tests.builder.helpers import generations, read_kv, watching
from tests.needs import tmpfs
from tests.overlayd.helpers import NodeEvents, following_boot, node_events
from tests.stack import UpStack, connected_bus, start_up

API: Final = "/api/v1"
FULL: Final = "no space left on the device of the store"
RECOVER_WITHIN: Final = 30.0  # overlayd looks for freed space every 0.5 s
JOB_WITHIN: Final = 120.0


def fill(folder: Path) -> Path:
    """A file in `folder` that takes every byte its file system has left."""
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as out:
        for size in (1 << 20, 4096, 1):
            block = bytes(size)
            try:
                while True:
                    out.write(block)
            except OSError as err:
                if err.errno != errno.ENOSPC:
                    raise
    return filler


def blobs(cas: Path) -> dict[str, str]:
    """Every blob file under cas/sha256, by path, with the sha256 of its bytes."""
    found = {}
    for path in sorted((cas / "sha256").rglob("*")):
        if path.is_file() and not path.name.startswith(TEMP_PREFIX):
            found[str(path.relative_to(cas))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def temps_older_than(cas: Path, moment: float) -> list[str]:
    """Temporary files left before `moment` (a retry may hold one for an instant after it)."""
    return [str(p) for p in cas.rglob(f"{TEMP_PREFIX}*") if p.stat().st_mtime < moment]


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Image archives that differ in one file (/etc/generation)."""
    return generations(tmp_path_factory.mktemp("sources"), 2)


@pytest.fixture
def up(tmp_path: Path) -> Iterator[UpStack]:
    data = tmp_path / "data"
    with tmpfs(data / "cas", "size=16m"), start_up(data) as stack:
        yield stack


@pytest.fixture
async def http(up: UpStack) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {up.token}"}
    async with httpx.AsyncClient(headers=headers, timeout=60.0, trust_env=False) as client:
        yield client


async def start_import(up: UpStack, http: httpx.AsyncClient, name: str, source: Path) -> str:
    r = await http.post(
        f"{up.url('builder')}{API}/images", json={"name": name, "source": str(source)}
    )
    assert r.status_code == 202, r.text
    job: str = r.json()["id"]
    return job


async def rendered(events: NodeEvents, node: str, digests: list[str]) -> RenderedEvent:
    """The `rendered` event of `node` with these system archives (it follows the KV write)."""
    async with asyncio.timeout(RECOVER_WITHIN):
        while True:
            for event in events.rendered:
                if event.node == node and event.system_digests == digests:
                    return event
            events.arrived.clear()
            await events.arrived.wait()


def node_body(ipaddr: str) -> dict[str, Any]:
    device = {"hwaddr": "52:54:00:fd:00:01", "ipaddr": ipaddr, "netmask": "255.255.0.0"}
    return {"profiles": ["default"], "image": "base", "network_devices": {"default": device}}


async def test_a_full_store_fails_cleanly_and_recovers_once_space_is_freed(
    up: UpStack, http: httpx.AsyncClient, sources: list[Path]
) -> None:
    cas = up.data / "cas"
    registry, overlayd = f"{up.url('registry')}{API}", f"{up.url('overlayd')}{API}"
    async with (
        watching(up.nats_url) as images,
        node_events(up.nats_url) as renders,
        following_boot(up.nats_url) as boot,
    ):
        job = await start_import(up, http, "base", sources[0])
        first = await images.end_of("base", job, within=JOB_WITHIN)
        assert first.image_digest, first
        r = await http.put(f"{registry}/nodes/n1", json=node_body("10.9.0.1"))
        assert r.status_code in (200, 201), r.text
        good = await boot.manifest("n1", lambda m: m.image_digest == first.image_digest)
        stored = blobs(cas)
        assert good.image_digest in {Path(p).name for p in stored}

        filler = fill(cas)

        # An image build: the job fails, saying why, and KV keeps the last good image.
        job = await start_import(up, http, "base", sources[1])
        failed = await images.end_of("base", job, within=JOB_WITHIN)
        assert FULL in failed.reason and str(cas) in failed.reason, failed
        assert "free space" in failed.reason
        kept = await read_kv(up.nats_url, "base")
        assert kept is not None and kept.image_digest == first.image_digest

        # An overlay render: `render_failed` naming the store, the manifest stays.
        r = await http.patch(f"{registry}/nodes/n1", json=node_body("10.9.0.2"))
        assert r.status_code == 200, r.text
        refused = await renders.failure("n1", within=RECOVER_WITHIN)
        assert FULL in refused.message and "once space is freed" in refused.message
        assert "wwinit" in refused.overlay.split(",")
        status = (await http.get(f"{overlayd}/status")).json()
        assert status["failing"] == 1

        # An upload into a site overlay: 507 with the reason.
        r = await http.post(f"{overlayd}/overlays", json={"name": "site", "empty": True})
        assert r.status_code == 201, r.text
        r = await http.put(f"{overlayd}/overlays/site/files/etc/motd", content=b"hi\n" * 9000)
        assert r.status_code == 507, r.text
        assert FULL in r.json()["error"]
        r = await http.post(f"{overlayd}/overlays:build", params={"nodes": "n1"})
        assert r.status_code == 507, r.text
        failed_by = time.time()

        # Nothing half-written, nothing stored changed, nothing left in the builder's staging.
        assert blobs(cas) == stored
        assert all(is_digest(Path(p).name) for p in stored)
        assert temps_older_than(cas, failed_by) == []
        assert list((up.data / "images" / ".staging").iterdir()) == []
        assert boot.manifests["n1"].system_digests == good.system_digests
        assert boot.manifests["n1"].runtime_digest == good.runtime_digest

        # Space is freed: overlayd renders n1 by itself, no new edit needed.
        filler.unlink()
        await boot.until(
            lambda found: found["n1"].system_digests != good.system_digests, RECOVER_WITHIN
        )
        fixed = boot.manifests["n1"]
        assert fixed.image_digest == first.image_digest
        announced = await rendered(renders, "n1", fixed.system_digests)
        assert announced.at >= failed_by
        assert (await http.get(f"{overlayd}/status")).json()["failing"] == 0

        # The next build succeeds, and n1 boots it.
        job = await start_import(up, http, "base", sources[1])
        second = await images.end_of("base", job, within=JOB_WITHIN)
        assert second.image_digest and second.image_digest != first.image_digest, second
        await boot.manifest("n1", lambda m: m.image_digest == second.image_digest)
        after = blobs(cas)
        assert stored.items() <= after.items()  # every earlier blob, byte for byte


async def test_host_files_are_kept_for_when_space_is_back(tmp_path: Path) -> None:
    config = OverlaydConfig(ip="10.0.0.254", netmask="255.255.0.0")
    with tmpfs(tmp_path / "data", "size=1m") as data:
        writer = HostWriter(HostConfig(data, template_settings(config, Settings()), config))
        node = Node(name="n1", network_devices={"default": NetDev(ipaddr="10.0.0.1")})
        filler = fill(data)
        writer.schedule([node], generation=1)
        attempt = asyncio.Event()
        writer.write_in_background(attempt.set)
        await asyncio.wait_for(attempt.wait(), 10)
        # Not written, not dropped: the set waits for the next attempt.
        hosts = data / "host" / "hosts"
        assert not hosts.exists()
        assert writer.due

        filler.unlink()
        attempt.clear()
        writer.write_in_background(attempt.set)
        await asyncio.wait_for(attempt.wait(), 10)
        assert "10.0.0.1" in hosts.read_text()
        assert not writer.pending
        assert [p.name for p in (data / "host").iterdir() if p.name.startswith(".")] == []


async def test_nats_on_a_full_disk_refuses_writes_keeps_reads_and_is_restarted_once_space_is_back(
    tmp_path: Path,
) -> None:
    """What docs/reliability.md says of NATS: a write that finds its disk full is refused (no
    answer: the client times out), reads go on, the stream keeps refusing writes after space
    is freed; `wolfpack up`'s keeper sees it in the log and restarts nats-server once there is
    room, and then writes go through again, nothing lost. The log is on the full disk too, as
    under `wolfpack up`."""
    with tmpfs(tmp_path / "nats", "size=8m") as store:
        server = NatsServer(store, port=free_port())
        await server.start()
        restarts: asyncio.Queue[int] = asyncio.Queue()
        keeper = asyncio.create_task(
            keep_running(server, logging.getLogger("test-keeper"), restarts.put_nowait)
        )
        try:
            async with connected_bus(server.url, "test-full") as bus:
                nodes = await bus.bucket(names.BUCKET_NODES, Node)
                await nodes.put("n1", Node(name="n1", comment="before"))
                filler = fill(store)
                big = Node(name="n2", comment="x" * 60_000)  # more than a block file has left
                with pytest.raises(nats.errors.TimeoutError):
                    await nodes.put("n2", big)
                assert (await nodes.get("n1")).comment == "before"
                old_pid = server.pid

                filler.unlink()
                # Still refused with room to spare: the stream is stuck until a restart. (This
                # refusal is logged too, should the full disk have swallowed the first one.)
                with pytest.raises(nats.errors.TimeoutError):
                    await nodes.put("n2", big)
                assert "no space left on device" in server.log_path.read_text()

                async with asyncio.timeout(30):
                    new_pid = await restarts.get()
                assert new_pid != old_pid
                await nodes.put("n2", big)  # the bus reconnected by itself
                assert (await nodes.get("n1")).comment == "before"
                assert (await nodes.get("n2")).comment == big.comment
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            await server.stop()
