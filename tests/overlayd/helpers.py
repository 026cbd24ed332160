"""Helpers for overlayd service tests: a real nats-server, registry and overlayd (each its own
`wolfpack run` process, one DATA folder), KV `boot` followed by a watch, the node events
overlayd publishes, archives unpacked with GNU cpio, and a fresh full render computed here
with the engine, to compare KV `boot` with."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import signal
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import yaml
from nats.aio.msg import Msg

from libs.common import names, subjects
from libs.common.bus.follow import following
from libs.common.models.image import ImageMeta
from libs.common.models.node import Node, Profile
from libs.common.models.overlay import (
    BootManifest,
    OverlayMeta,
    RenderedEvent,
    RenderFailedEvent,
)
from libs.common.nodes.merge import merge_node
from libs.common.settings import Settings
from libs.common.site.config import include_host_paths, load_config, template_settings
from libs.common.store.cas import ContentStore
from services.overlayd.engine import (
    NodeRender,
    OverlayRenderer,
    OverlaySources,
    ShippedOverlays,
)
from services.overlayd.engine.keys import load_host_keys
from services.overlayd.manifests import build_manifest
from services.overlayd.site_overlays import OverlayStorage
from tests.event_recorder import recording
from tests.needs import need_command
from tests.stack import (
    connected_bus,
    log_tail,
    nats_client,
    overlayd_settled,
    run_service,
    start_nats,
    stop_process,
    wait_healthy,
)

API = "/api/v1"
WAIT = 60.0
CONFIG = {
    "ip": "10.0.0.254",
    "netmask": "255.255.0.0",
    "dhcp_range": ["10.0.200.1", "10.0.200.250"],
    "nfs_exports": [{"path": "/home"}, {"path": "/opt", "export_options": "ro,sync"}],
}


@dataclass
class Stack:
    data: Path
    nats_url: str
    registry_url: str
    token: str
    registry: subprocess.Popen[bytes]
    overlayd: subprocess.Popen[bytes] | None = None
    overlayd_url: str = ""
    overlayd_offset: int = 0
    overlayd_log: Path | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def registry_api(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.registry_url + API, headers=self.headers, timeout=120
        )

    def overlayd_api(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.overlayd_url + API, headers=self.headers, timeout=300
        )

    def start_overlayd(self) -> None:
        process, port, log = run_service("overlayd", self.data, self.nats_url)
        self.overlayd, self.overlayd_log = process, log
        self.overlayd_url = f"http://127.0.0.1:{port}"
        self.overlayd_offset = port - names.PORTS["overlayd"]
        wait_healthy(self.overlayd_url, process, log)

    def kill_overlayd(self) -> None:
        assert self.overlayd is not None
        self.overlayd.send_signal(signal.SIGKILL)
        self.overlayd.wait()

    def overlayd_log_text(self) -> str:
        return log_tail(self.overlayd_log, 200) if self.overlayd_log else ""


@contextlib.contextmanager
def start_stack(tmp: Path, config: dict[str, Any] | None = None) -> Iterator[Stack]:
    """nats-server, the registry and overlayd on one DATA folder (overlayd.yaml: `config`)."""
    need_command("cpio", "cpio")
    data = tmp / "data"
    data.mkdir(parents=True)
    (data / "overlayd.yaml").write_text(yaml.safe_dump(config or CONFIG))
    with start_nats(tmp / "nats") as server:
        registry, port, log = run_service("registry", data, server.url)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, registry, log)
            token = (data / names.TOKEN_FILE).read_text().strip()
            stack = Stack(data, server.url, url, token, registry)
            stack.start_overlayd()
            try:
                with recording(server.url):
                    yield stack
            finally:
                if stack.overlayd is not None:
                    stop_process(stack.overlayd)
        finally:
            stop_process(registry)


# -- KV `boot`, followed ------------------------------------------------------------------------


@dataclass
class Boot:
    """KV `boot` as a watch delivers it: the manifests, and a way to wait for a condition."""

    manifests: dict[str, BootManifest] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    # (node, revision, arrival time) of every put, in order.
    log: list[tuple[str, int, float]] = field(default_factory=list)

    def seen(self, key: str, old: BootManifest | None, value: BootManifest | None) -> None:
        if value is None:
            self.manifests.pop(key, None)
        else:
            self.manifests[key] = value
            self.log.append((key, value.revision, asyncio.get_running_loop().time()))
        self.changed.set()

    async def until(
        self, condition: Callable[[dict[str, BootManifest]], bool], within: float = WAIT
    ) -> dict[str, BootManifest]:
        async with asyncio.timeout(within):
            while not condition(self.manifests):
                self.changed.clear()
                await self.changed.wait()
        return self.manifests

    async def manifest(
        self, node: str, where: Callable[[BootManifest], bool] = lambda m: True
    ) -> BootManifest:
        await self.until(lambda found: node in found and where(found[node]))
        return self.manifests[node]


async def caught_up(boot: Boot, nats_url: str, node: str) -> BootManifest:
    """`node`'s manifest as KV `boot` holds it now: overlayd may be done while this watch
    is still a few writes behind."""
    return (await all_caught_up(boot, nats_url))[node]


async def all_caught_up(boot: Boot, nats_url: str) -> dict[str, BootManifest]:
    """Every manifest as KV `boot` holds it now (see caught_up)."""
    async with connected_bus(nats_url, "test-caught-up") as bus:
        stored = await (await bus.bucket(names.BUCKET_BOOT, BootManifest)).items()
    wanted = {name: m.revision for name, m in stored.items()}

    def current(found: dict[str, BootManifest]) -> bool:
        return all(n in found and found[n].revision >= r for n, r in wanted.items())

    await boot.until(current)
    return {name: boot.manifests[name] for name in wanted}


@contextlib.asynccontextmanager
async def following_boot(nats_url: str) -> AsyncIterator[Boot]:
    boot = Boot()
    async with following(nats_url, "test-boot", names.BUCKET_BOOT, BootManifest, boot.seen):
        yield boot


# -- events -------------------------------------------------------------------------------------


@dataclass
class NodeEvents:
    rendered: list[RenderedEvent] = field(default_factory=list)
    failed: list[RenderFailedEvent] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def _on(self, msg: Msg) -> None:
        verb = subjects.parse(msg.subject).verb
        if verb == "rendered":
            self.rendered.append(msgspec.json.decode(msg.data, type=RenderedEvent))
        elif verb == "render_failed":
            self.failed.append(msgspec.json.decode(msg.data, type=RenderFailedEvent))
        self.arrived.set()

    async def failure(self, node: str, within: float = WAIT) -> RenderFailedEvent:
        async with asyncio.timeout(within):
            while True:
                for event in self.failed:
                    if event.node == node:
                        return event
                self.arrived.clear()
                await self.arrived.wait()


@contextlib.asynccontextmanager
async def node_events(nats_url: str) -> AsyncIterator[NodeEvents]:
    events = NodeEvents()
    async with nats_client(nats_url) as nc:
        await nc.subscribe(subjects.every("node", "rendered"), cb=events._on)
        await nc.subscribe(subjects.every("node", "render_failed"), cb=events._on)
        await nc.flush()
        yield events


# -- archives -----------------------------------------------------------------------------------


def unpack(data: Path, digests: list[str], dest: Path) -> Path:
    """The archives `digests` (from the store in DATA), gunzip'd and unpacked in order with
    GNU `cpio -idm` into `dest`, as the kernel lays initrds over each other."""
    store = ContentStore(data / "cas")
    dest.mkdir(parents=True, exist_ok=True)
    for digest in digests:
        raw = gzip.decompress(store.path(digest).read_bytes())
        subprocess.run(
            ["cpio", "-idmu", "--quiet", "--no-absolute-filenames"],
            input=raw,
            cwd=dest,
            check=True,
            capture_output=True,
        )
    return dest


# -- a fresh full render, computed here ---------------------------------------------------------


async def fresh_manifests(stack: Stack, scratch: Path) -> dict[str, BootManifest]:
    """What a fresh full render of the cluster as KV holds it now gives, by the engine in this
    process (its own scratch store: digests are content, so they compare)."""
    return await fresh_render(stack.nats_url, stack.data, stack.overlayd_offset, scratch)


async def fresh_render(
    nats_url: str, data: Path, port_offset: int, scratch: Path
) -> dict[str, BootManifest]:
    """`fresh_manifests` for any stack: its NATS, its DATA folder, its port offset."""
    async with connected_bus(nats_url, "test-fresh") as bus:
        nodes = await (await bus.bucket(names.BUCKET_NODES, Node)).items()
        profiles = await (await bus.bucket(names.BUCKET_PROFILES, Profile)).items()
        images = await (await bus.bucket(names.BUCKET_IMAGES, ImageMeta)).items()
        store = ContentStore(scratch / "cas")
        shipped = ShippedOverlays()
        overlays = await bus.bucket(names.BUCKET_OVERLAYS, OverlayMeta)
        site = OverlayStorage(overlays, ContentStore(data / "cas"), shipped)
        settings = Settings(data=str(data), port_offset=port_offset)
        config = load_config(data)
        renderer = OverlayRenderer(
            OverlaySources(shipped, site, ContentStore(data / "cas")),
            template_settings(config, settings),
            await load_host_keys(data),
            store,
            data_dir=data,
            host_roots=include_host_paths(config),
        )
        merged = {
            name: merge_node(msgspec.structs.replace(node, name=name), profiles).node
            for name, node in nodes.items()
        }
        everyone = list(merged.values())
        results = await renderer.render_nodes(everyone, everyone, images)
        expected: dict[str, BootManifest] = {}
        for name, result in results.items():
            assert isinstance(result, NodeRender), f"{name}: {result}"
            node = merged[name]
            image = images.get(node.image) if node.image else None
            expected[name] = build_manifest(node, result, image)
        return expected


def without_revisions(manifests: dict[str, BootManifest]) -> dict[str, BootManifest]:
    return {name: msgspec.structs.replace(m, revision=0) for name, m in manifests.items()}


async def status(stack: Stack) -> dict[str, Any]:
    async with stack.overlayd_api() as api:
        r = await api.get("/status")
        r.raise_for_status()
        doc: dict[str, Any] = r.json()
        return doc


async def settled(stack: Stack, within: float = WAIT) -> dict[str, Any]:
    """Wait until overlayd has nothing left to do (tests/stack.py overlayd_settled)."""
    return await overlayd_settled(stack.nats_url, lambda: status(stack), within)


async def revisions(stack: Stack) -> dict[str, int]:
    """KV `boot` revisions by node, read directly."""
    async with connected_bus(stack.nats_url, "test-revisions") as bus:
        bucket = await bus.bucket(names.BUCKET_BOOT, BootManifest)
        return {name: m.revision for name, m in (await bucket.items()).items()}
