"""Overlay renderer benchmark (not a test): starts its own nats-server, registry and overlayd.

    python bench/overlay.py [--nodes 10000] [--edits 100] [--json]

With N nodes on the default profile (Warewulf's default overlays), each with a name and an
address of its own, it measures (a) the first render: one `POST /nodes:bulk` until all N boot
manifests are in KV `boot`; (b) a full re-render (`POST /overlays:build`, overlayd's caches
dropped); (c) overlayd's peak RSS (VmHWM); (d) one node's address edited (PATCH sent) until
its new manifest is in KV (seen by a KV watch: the one whose wwinit archive, which holds the
address, changed; every node's hosts file follows later), p50/p95 over E edits of different
nodes, one after the other; (e) a `default` profile edit (kernel arguments) until all N
manifests are updated; (f) distinct system-overlay blobs among the N manifests.

References from the same run: the same templates rendered by plain Jinja2 in a loop (no
sandbox, no archives, no store; per-node templates once per node, the others once) as the
floor under (a), (b) and (e); the registry's `updated` event reaching a subscriber as the floor
under (d); N x (system overlays) archives under (f). Goals: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import msgspec
import nats
import yaml
from nats.aio.msg import Msg

from libs.common import names, subjects
from libs.common.bus.follow import following
from libs.common.bus.server import NatsServer, free_port
from libs.common.models.node import NetDev, Node
from libs.common.models.overlay import BootManifest
from libs.common.nodes.defaults import default_profile
from libs.common.nodes.merge import merge_node
from libs.common.settings import Settings
from libs.common.site.config import OverlaydConfig, template_settings
from services.overlayd.engine import ShippedOverlays
from services.overlayd.engine.context import node_view, settings_view
from services.overlayd.engine.paths import is_template
from services.overlayd.engine.template import NODE_VARIABLES, ipv4_network, netmask_of, prefixlen

REPO = Path(__file__).resolve().parent.parent
API = names.API_PREFIX
FIRST_IP = ipaddress.IPv4Address("10.0.0.1")
NETMASK = "255.0.0.0"
SERVER_IP = "10.255.255.254"
READY_WAIT = 60.0
WAIT = 600.0


class Figure(msgspec.Struct):
    measure: str
    value: float
    unit: str
    goal: float | None = None  # the value must stay below it (same unit)
    reference: float | None = None
    reference_name: str | None = None


class Report(msgspec.Struct, kw_only=True):
    nodes: int
    edits: int
    cpus: int
    python: str
    # 1-minute load average before and after: other work on the machine shows here.
    load: tuple[float, float]
    figures: list[Figure]


def fail(message: str) -> SystemExit:
    return SystemExit(f"bench/overlay.py: {message}")


def check(response: httpx.Response) -> httpx.Response:
    if response.is_error:
        request = response.request
        raise fail(f"{request.method} {request.url} -> {response.status_code}: {response.text}")
    return response


# -- the stack ----------------------------------------------------------------------------------


class Stack(msgspec.Struct, kw_only=True):
    data: Path
    nats: str
    registry: str
    overlayd: str
    token: str
    overlayd_pid: int


async def serve(name: str, data: Path, nats_url: str, log: Path) -> tuple[Any, str]:
    port = free_port()
    argv = [sys.executable, "-m", "libs.runtime.cli", "run", name, "--data", str(data)]
    argv += ["--nats", nats_url, "--bind", "127.0.0.1"]
    argv += ["--port-offset", str(port - names.PORTS[name]), "--log-level", "warning"]
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(*argv, stdout=out, stderr=out, cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    # Polling: readiness of another process is not an event this side can await.
    async with httpx.AsyncClient(timeout=2) as client:
        deadline = time.monotonic() + READY_WAIT
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                tail = (await asyncio.to_thread(log.read_text))[-2000:]
                raise fail(f"{name} exited with {proc.returncode}:\n{tail}")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get(url + "/healthz")).status_code == 200:
                    return proc, url
            await asyncio.sleep(0.1)
    raise fail(f"{name} was not healthy after {READY_WAIT} s")


async def stop(proc: Any) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()


@contextlib.asynccontextmanager
async def running_stack() -> AsyncIterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="wolfpack-bench-overlay-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        config = {"ip": SERVER_IP, "netmask": NETMASK}
        (data / "overlayd.yaml").write_text(yaml.safe_dump(config))
        server = NatsServer(Path(tmp) / "nats", port=free_port())
        await server.start()
        procs = []
        try:
            registry, registry_url = await serve("registry", data, server.url, Path(tmp) / "log")
            procs.append(registry)
            overlayd, overlayd_url = await serve("overlayd", data, server.url, Path(tmp) / "log")
            procs.append(overlayd)
            yield Stack(
                data=data,
                nats=server.url,
                registry=registry_url + API,
                overlayd=overlayd_url + API,
                token=(data / names.TOKEN_FILE).read_text().strip(),
                overlayd_pid=overlayd.pid,
            )
        finally:
            for proc in reversed(procs):
                await stop(proc)
            await server.stop()


def peak_rss(pid: int) -> float:
    """VmHWM of a process, MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise fail(f"no VmHWM for process {pid}")


# -- KV `boot`, followed ------------------------------------------------------------------------


class Boot:
    def __init__(self) -> None:
        self.manifests: dict[str, BootManifest] = {}
        self.changed = asyncio.Event()

    def seen(self, key: str, old: BootManifest | None, value: BootManifest | None) -> None:
        if value is None:
            self.manifests.pop(key, None)
        else:
            self.manifests[key] = value
        self.changed.set()

    async def until(self, condition: Callable[[], bool], within: float = WAIT) -> None:
        async with asyncio.timeout(within):
            while not condition():
                self.changed.clear()
                await self.changed.wait()


@contextlib.asynccontextmanager
async def following_boot(nats_url: str) -> AsyncIterator[Boot]:
    boot = Boot()
    async with following(nats_url, "bench-boot", names.BUCKET_BOOT, BootManifest, boot.seen):
        yield boot


async def settled(overlayd: httpx.AsyncClient) -> dict[str, Any]:
    """overlayd idle: no change waiting, no wave, no follow-up (asked every 50 ms)."""
    async with asyncio.timeout(WAIT):
        while True:
            found: dict[str, Any] = check(await overlayd.get("/status")).json()
            busy = found["busy"] or found["pending"] or found["followup"]
            if found["reconciled"] and not busy and not found["host_files_pending"]:
                return found
            await asyncio.sleep(0.05)


# -- the floor: the same templates, plain Jinja2 ------------------------------------------------


class _Skip(Exception):
    pass


def plain_floor(nodes: list[Node]) -> float:
    """Seconds to render the default overlays' templates with plain Jinja2: node views built,
    per-node templates once per node, the others once; nothing archived or stored."""
    import jinja2

    profile = default_profile()
    shipped = ShippedOverlays()
    config = OverlaydConfig(ip=SERVER_IP, netmask=NETMASK)
    settings = settings_view(template_settings(config, Settings()))
    keys = {t: {"private": "k", "public": "p"} for t in ("rsa", "ecdsa", "ed25519")}

    def skip() -> str:
        raise _Skip

    helpers: dict[str, Callable[..., str]] = {
        "file": lambda path, mode=None: "",
        "symlink": lambda target, path=None: "",
        "skip": skip,
        "abort": skip,
        "include_host": lambda path, default=None: "",
        "include_image": lambda path, default=None: "",
    }
    templates: list[tuple[str, jinja2.Template, bool]] = []
    for overlay in dict.fromkeys([*profile.system_overlay, *profile.runtime_overlay]):
        tree = shipped.get(overlay)
        if tree is None:
            raise fail(f"no shipped overlay {overlay}")
        sources = {p: e.data.decode() for p, e in tree.entries.items() if e.kind == "file"}
        env = jinja2.Environment(
            loader=jinja2.DictLoader(sources),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.filters.update(prefixlen=prefixlen, netmask_of=netmask_of, ipv4_network=ipv4_network)
        env.globals.update(helpers)
        for path in sorted(p for p in sources if is_template(p)):
            template = env.get_template(path)
            names_read = jinja2.meta.find_undeclared_variables(env.parse(sources[path]))
            templates.append((overlay, template, bool(names_read & NODE_VARIABLES)))
    start = time.perf_counter()
    views = [node_view(node) for node in nodes]
    base: dict[str, Any] = {"nodes": views, "settings": settings, "keys": keys}
    base |= {"authorized_keys": [], "image": None, "build_time": "2026-01-01T00:00:00Z"}
    for overlay, template, per_node in templates:
        for view in views if per_node else views[:1]:
            with contextlib.suppress(_Skip):
                template.render(base | {"node": view, "overlay": overlay})
    return time.perf_counter() - start


# -- the measures -------------------------------------------------------------------------------


def name_of(i: int, width: int) -> str:
    return f"n{i + 1:0{width}d}"


def node_of(i: int, width: int) -> Node:
    """Node i as the bulk add below creates it."""
    device = NetDev(device="eth0", ipaddr=str(FIRST_IP + i), netmask=NETMASK)
    return Node(name=name_of(i, width), profiles=["default"], network_devices={"default": device})


async def first_render(
    registry: httpx.AsyncClient, overlayd: httpx.AsyncClient, boot: Boot, count: int, width: int
) -> float:
    body = {
        "names": f"n[{1:0{width}d}-{count:0{width}d}]",
        "ipaddr": str(FIRST_IP),
        "network_devices": {"default": {"device": "eth0", "netmask": NETMASK}},
    }
    start = time.perf_counter()
    check(await registry.post("/nodes:bulk", json=body))
    await boot.until(lambda: len(boot.manifests) == count)
    seconds = time.perf_counter() - start
    await settled(overlayd)
    return seconds


async def full_render(overlayd: httpx.AsyncClient, count: int) -> float:
    start = time.perf_counter()
    report = check(await overlayd.post("/overlays:build")).json()
    seconds = time.perf_counter() - start
    if report["nodes_rendered"] != count or report["failed"]:
        raise fail(f"overlay build rendered {report['nodes_rendered']}, {report['failed']} failed")
    return seconds


async def single_edits(
    registry: httpx.AsyncClient, boot: Boot, nats_url: str, count: int, edits: int, width: int
) -> tuple[list[float], list[float]]:
    """Per edit: ms from the PATCH to its manifest in KV (its per-node archives changed), and
    ms from the PATCH to the registry's `updated` event reaching a subscriber."""
    own = -1  # the archive of the node's own files (wwinit's config names its address)
    arrived: dict[str, float] = {}
    event = asyncio.Event()

    async def on_event(msg: Msg) -> None:
        arrived[subjects.parse(msg.subject).name] = time.perf_counter()
        event.set()

    nc = await nats.connect(nats_url)
    await nc.subscribe(subjects.every("node", "updated"), cb=on_event)
    await nc.flush()
    manifest_ms, event_ms = [], []
    step = max(1, count // edits)
    try:
        for k in range(edits):
            name = name_of((k * step) % count, width)
            before = boot.manifests[name].system_digests[own]
            address = str(FIRST_IP + count + k)  # new, and unique in the cluster
            body = {"network_devices": {"default": {"ipaddr": address}}}
            arrived.pop(name, None)
            sent = time.perf_counter()
            check(await registry.patch(f"/nodes/{name}", json=body))
            await boot.until(partial(digest_moved, boot, name, own, before), 30)
            landed = time.perf_counter()
            async with asyncio.timeout(30):
                while name not in arrived:
                    event.clear()
                    await event.wait()
            manifest_ms.append((landed - sent) * 1000)
            event_ms.append((arrived[name] - sent) * 1000)
    finally:
        await nc.close()
    return manifest_ms, event_ms


def digest_moved(boot: Boot, node: str, at: int, before: str) -> bool:
    return boot.manifests[node].system_digests[at] != before


async def profile_edit(registry: httpx.AsyncClient, boot: Boot, count: int) -> float:
    start = time.perf_counter()
    check(await registry.patch("/profiles/default", json={"kernel": {"args": ["bench=1"]}}))
    await boot.until(
        lambda: sum(1 for m in boot.manifests.values() if "bench=1" in m.kernel_args) == count
    )
    return time.perf_counter() - start


def spread(measure: str, ms: list[float], ref: list[float], ref_name: str) -> list[Figure]:
    cuts, floor = (statistics.quantiles(v, n=100, method="inclusive") for v in (ms, ref))
    return [
        Figure(
            f"{measure} p{p}", cuts[p - 1], "ms", 100.0 if p == 95 else None, floor[p - 1], ref_name
        )
        for p in (50, 95)
    ]


async def run(count: int, edits: int) -> Report:
    load_before = os.getloadavg()[0]
    width = max(5, len(str(count)))
    profiles = {"default": default_profile()}
    nodes = [merge_node(node_of(i, width), profiles).node for i in range(count)]
    floor = await asyncio.to_thread(plain_floor, nodes)
    system = len(default_profile().system_overlay)
    async with running_stack() as stack:
        headers = {"Authorization": f"Bearer {stack.token}"}
        async with (
            httpx.AsyncClient(base_url=stack.registry, headers=headers, timeout=WAIT) as registry,
            httpx.AsyncClient(base_url=stack.overlayd, headers=headers, timeout=WAIT) as overlayd,
            following_boot(stack.nats) as boot,
        ):
            first = await first_render(registry, overlayd, boot, count, width)
            full = await full_render(overlayd, count)
            rss = peak_rss(stack.overlayd_pid)
            distinct = len({d for m in boot.manifests.values() for d in m.system_digests})
            manifest_ms, event_ms = await single_edits(
                registry, boot, stack.nats, count, edits, width
            )
            await settled(overlayd)
            profile = await profile_edit(registry, boot, count)
            await settled(overlayd)
            rss = max(rss, peak_rss(stack.overlayd_pid))
    plain = "plain Jinja2 loop"
    blobs = count * system
    return Report(
        nodes=count,
        edits=edits,
        cpus=len(os.sched_getaffinity(0)),
        python=platform.python_version(),
        load=(load_before, os.getloadavg()[0]),
        figures=[
            Figure(
                f"first render: bulk add -> {count} manifests in KV", first, "s", 60.0, floor, plain
            ),
            Figure("full re-render (overlay build, caches dropped)", full, "s", 60.0, floor, plain),
            Figure("overlayd peak RSS", rss, "MiB", 1024.0),
            *spread("address edit -> manifest in KV", manifest_ms, event_ms, "registry event"),
            Figure(f"profile edit -> {count} manifests updated", profile, "s", 60.0, floor, plain),
            # Far fewer than one per overlay per node: at most one per node plus the shared ones.
            Figure(
                "distinct system-overlay blobs",
                distinct,
                "blobs",
                count + system,
                blobs,
                "per overlay",
            ),
        ],
    )


def table(report: Report) -> str:
    lines = [
        f"wolfpack overlay benchmark: {report.nodes} nodes, {report.edits} edits, "
        f"{report.cpus} CPUs, Python {report.python}, load average {report.load[0]:.2f} before, "
        f"{report.load[1]:.2f} after",
        "",
        f"{'measure':<52} {'value':>12}  {'goal':<12} {'':<6} {'reference':>30}  ratio",
    ]
    for f in report.figures:
        value = (
            f"{f.value:,.0f} {f.unit}" if f.unit in ("blobs", "MiB") else f"{f.value:.2f} {f.unit}"
        )
        goal, verdict, ref, ratio = "", "", "", ""
        if f.goal is not None:
            goal, verdict = f"< {f.goal:,g} {f.unit}", "ok" if f.value < f.goal else "MISSED"
        if f.reference:
            unit = "" if f.unit == "blobs" else f" {f.unit}"
            number = f"{f.reference:,.0f}" if f.unit == "blobs" else f"{f.reference:,.2f}"
            ref = f"{f.reference_name} {number}{unit}"
            ratio = f"{f.value / f.reference:.2f}x"
        lines.append(f"{f.measure:<52} {value:>12}  {goal:<12} {verdict:<6} {ref:>30}  {ratio}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--nodes", type=int, default=10_000, help="nodes (10000)")
    parser.add_argument("--edits", type=int, default=100, help="single address edits (100)")
    parser.add_argument("--json", action="store_true", help="print machine-readable results")
    args = parser.parse_args(argv)
    if args.nodes < 2 or args.edits < 2:
        parser.error("--nodes and --edits need at least 2")
    report = asyncio.run(run(args.nodes, min(args.edits, args.nodes)))
    print(msgspec.json.format(msgspec.json.encode(report)).decode() if args.json else table(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
