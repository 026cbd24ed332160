"""Registry benchmark (not a test): starts its own stack and measures what an admin feels.

    python bench/registry.py [--nodes 10000] [--concurrency 8] [--events 1000] [--json]

Needs wolfpack installed (`pip install -e .`, which scripts/test does). It runs
`wolfpack up --data TMPDIR --port-offset N`, waits for the registry's /healthz, then measures
(a) one `POST /nodes:bulk` of N nodes; (b) N replacing `PUT /nodes/{name}`, first with a few in
flight (throughput), then one at a time (latency); (c) event delivery, store -> subscriber;
(d) `wolfctl node list` and `wolfctl node list -o json` of the N nodes. Goals: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import hostlist
import httpx
import msgspec
import nats
from nats.aio.msg import Msg

from libs.common import names, subjects
from libs.common.endpoints import FILE as ENDPOINTS_FILE
from libs.common.endpoints import Endpoints, read_endpoints
from libs.common.models.api import BulkAdd, BulkResult
from libs.common.models.events import ChangeEvent
from libs.common.models.node import Kernel, NetDev, Node, Profile

PROFILE = "bench"
NETNAME = "default"
FIRST_IP = ipaddress.IPv4Address("10.0.0.1")
NETMASK = "255.0.0.0"  # room for 16M nodes counted up from FIRST_IP
EVENT_METHOD = (
    "event latency = time the subscriber got wolfpack.node.<name>.updated - JetStream timestamp "
    "of the KV write named by the event's revision (one write at a time, same host clock)"
)
EVENT_FALLBACK = (
    "event latency = time the subscriber got the event - the event's `at` (set by the registry "
    "when it published); the KV write's timestamp could not be read"
)


class Figure(msgspec.Struct):
    measure: str
    value: float
    unit: str
    # The figure must stay below this (same unit); None: reported only.
    goal: float | None = None
    # The same measure on the reference in the same run (raw NATS KV, curl), when there is one.
    reference: float | None = None
    reference_name: str | None = None


class Report(msgspec.Struct, kw_only=True):
    nodes: int
    concurrency: int
    cpus: int
    python: str
    event_method: str
    figures: list[Figure]


class Stack(msgspec.Struct, kw_only=True):
    api: str
    url: str
    token: str
    nats: str
    data: Path


def console(script: str, module: str) -> list[str]:
    """argv of an installed console script, else of its entry point through this Python."""
    found = shutil.which(script)
    if found:
        return [found]
    return [sys.executable, "-c", f"from {module} import main; raise SystemExit(main())"]


def fail(message: str) -> SystemExit:
    return SystemExit(f"bench/registry.py: {message}")


def check(response: httpx.Response) -> httpx.Response:
    if response.is_error:
        request = response.request
        raise fail(
            f"{request.method} {request.url} -> {response.status_code}: {response.text[:300]}"
        )
    return response


@contextlib.asynccontextmanager
async def running_stack(offset: int) -> AsyncIterator[Stack]:
    """`wolfpack up` in a temporary folder, ready (registry healthy), stopped on the way out."""
    with tempfile.TemporaryDirectory(prefix="wolfpack-bench-") as tmp:
        data, log_path = Path(tmp) / "data", Path(tmp) / "up.log"
        argv = [*console("wolfpack", "libs.runtime.cli"), "up", "--data", str(data)]
        argv += ["--port-offset", str(offset)]
        with log_path.open("wb") as log:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            endpoints = await wait_ready(proc, data, log_path)
            yield await asyncio.to_thread(describe, endpoints, data)
        finally:
            await stop(proc)


def describe(endpoints: Endpoints, data: Path) -> Stack:
    url = endpoints.services["registry"]
    token = Path(endpoints.token_file).read_text().strip()
    # up's nats-server wants its client token: as the URL's user, as every wolfpack process
    # on the host presents it (libs/common/bus/auth.py).
    nats_token = (data / names.NATS_TOKEN_FILE).read_text().strip()
    nats = endpoints.nats.replace("nats://", f"nats://{nats_token}@", 1)
    return Stack(api=url + names.API_PREFIX, url=url, token=token, nats=nats, data=data)


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:]


def announced(data: Path) -> Endpoints | None:
    """What `wolfpack up` wrote to DATA/endpoints.json, once it has."""
    return read_endpoints(data) if (data / ENDPOINTS_FILE).exists() else None


async def wait_ready(proc: asyncio.subprocess.Process, data: Path, log: Path) -> Endpoints:
    # Polling: readiness of another process is not an event this side can await.
    async with httpx.AsyncClient(timeout=2) as client:
        for _ in range(600):
            if proc.returncode is not None:
                raise fail(f"wolfpack up exited with {proc.returncode}:\n{tail(log)}")
            endpoints = await asyncio.to_thread(announced, data)
            if endpoints is not None:
                with contextlib.suppress(httpx.TransportError):
                    health = await client.get(endpoints.services["registry"] + "/healthz")
                    if health.status_code == 200:
                        return endpoints
            await asyncio.sleep(0.1)
    raise fail(f"the registry was not healthy after 60 s:\n{tail(log)}")


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            # Its own session holds only what it started; its services die with it (PDEATHSIG).
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


def node_body(name: str, index: int, comment: str) -> bytes:
    device = NetDev(ipaddr=str(FIRST_IP + index), netmask=NETMASK)
    node = Node(name=name, profiles=[PROFILE], comment=comment, network_devices={NETNAME: device})
    return msgspec.json.encode(node)


def spread(measure: str, ms: list[float], points: tuple[int, ...], goal: float) -> list[Figure]:
    """Percentiles of latencies in ms; the goal applies to p95."""
    cuts = statistics.quantiles(ms, n=100, method="inclusive")
    return [Figure(f"{measure} p{p}", cuts[p - 1], "ms", goal if p == 95 else None) for p in points]


async def bench_bulk(http: httpx.AsyncClient, hosts: str, count: int) -> list[Figure]:
    body = BulkAdd(
        names=hosts,
        profiles=[PROFILE],
        netname=NETNAME,
        ipaddr=str(FIRST_IP),
        network_devices={NETNAME: NetDev(netmask=NETMASK)},
    )
    start = time.perf_counter()
    response = check(await http.post("/nodes:bulk", content=msgspec.json.encode(body)))
    seconds = time.perf_counter() - start
    created = msgspec.json.decode(response.content, type=BulkResult).created
    if len(created) != count:
        raise fail(f"POST /nodes:bulk created {len(created)} nodes, expected {count}")
    return [
        Figure(f"bulk add {count} nodes (one POST /nodes:bulk)", seconds, "s", 10.0),
        Figure("bulk add rate", count / seconds, "nodes/s"),
    ]


async def bench_put(
    http: httpx.AsyncClient, nodes: list[str], concurrency: int, nats_url: str
) -> list[Figure]:
    todo: Iterator[tuple[int, str]] = iter(enumerate(nodes))

    async def worker() -> None:
        for index, name in todo:  # one shared iterator: each name is taken once
            check(await http.put(f"/nodes/{name}", content=node_body(name, index, "put")))

    start = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(worker())
    parallel = time.perf_counter() - start

    latencies: list[float] = []
    start = time.perf_counter()
    for index, name in enumerate(nodes):
        sent = time.perf_counter()
        check(await http.put(f"/nodes/{name}", content=node_body(name, index, "sequential")))
        latencies.append((time.perf_counter() - sent) * 1000)
    sequential = time.perf_counter() - start
    figures = [
        Figure(f"PUT rate, {concurrency} in flight", len(nodes) / parallel, "nodes/s"),
        Figure("PUT rate, one at a time", len(nodes) / sequential, "nodes/s"),
        *spread("PUT latency", latencies, (50, 95, 99), goal=20.0),
    ]
    floor = await raw_kv_latencies(nats_url, nodes)
    cuts = statistics.quantiles(floor, n=100, method="inclusive")
    for f in figures[2:]:
        f.reference = cuts[int(f.measure.rsplit("p", 1)[1]) - 1]
        f.reference_name = "raw KV put"
    return figures


async def raw_kv_latencies(nats_url: str, nodes: list[str]) -> list[float]:
    """The floor under a PUT: the same bodies written straight to a JetStream KV bucket, one
    at a time, with no HTTP, validation or event."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        kv = await js.create_key_value(bucket="bench_reference", history=1)
        latencies = []
        for index, name in enumerate(nodes):
            body = node_body(name, index, "reference")
            sent = time.perf_counter()
            await kv.put(name, body)
            latencies.append((time.perf_counter() - sent) * 1000)
        await js.delete_key_value("bench_reference")
    finally:
        await nc.close()
    return latencies


async def bench_events(
    http: httpx.AsyncClient, nats_url: str, nodes: list[str]
) -> tuple[list[Figure], str]:
    arrivals: dict[tuple[str, int], tuple[float, ChangeEvent]] = {}
    arrived = asyncio.Event()

    async def on_event(msg: Msg) -> None:
        received = time.time()
        event = msgspec.json.decode(msg.data, type=ChangeEvent)
        arrivals[(event.name, event.revision)] = (received, event)
        arrived.set()

    nc = await nats.connect(nats_url)
    try:
        await nc.subscribe(subjects.every("node", "updated"), cb=on_event)
        await nc.flush()
        samples: list[tuple[float, ChangeEvent]] = []
        for index, name in enumerate(nodes):
            response = check(await http.put(f"/nodes/{name}", content=node_body(name, index, "ev")))
            key = (name, int(msgspec.json.decode(response.content)["revision"]))
            async with asyncio.timeout(5):
                while key not in arrivals:
                    arrived.clear()
                    await arrived.wait()
            samples.append(arrivals.pop(key))
        stored = await kv_write_times(nc, samples)
    finally:
        await nc.close()
    if stored is None:
        latencies, method = [(t - event.at) * 1000 for t, event in samples], EVENT_FALLBACK
    else:
        latencies = [(t - s) * 1000 for (t, _), s in zip(samples, stored, strict=True)]
        method = EVENT_METHOD
    return spread("event latency", latencies, (50, 95), goal=20.0), method


async def kv_write_times(
    nc: nats.NATS, samples: list[tuple[float, ChangeEvent]]
) -> list[float] | None:
    """When JetStream stored each event's KV revision (unix seconds); None if one is unreadable."""
    js = nc.jetstream()
    times: list[float] = []
    for _, event in samples:
        try:
            msg = await js.get_msg(f"KV_{names.BUCKET_NODES}", seq=event.revision)
        except nats.js.errors.Error:
            return None
        if msg.time is None or msg.subject != f"$KV.{names.BUCKET_NODES}.{event.name}":
            return None
        times.append(msg.time.timestamp())
    return times


async def bench_list(stack: Stack, count: int) -> list[Figure]:
    env = os.environ | {
        "WOLFPACK_URL": stack.url,
        "WOLFPACK_TOKEN": stack.token,
        "WOLFPACK_DATA": str(stack.data),
    }
    wolfctl = [*console("wolfctl", "libs.wolfctl.main"), "node", "list"]
    figures = []
    for extra in ([], ["-o", "json"]):
        label = " ".join(["wolfctl node list", *extra])
        runs = [await timed([*wolfctl, *extra], env) for _ in range(3)]
        for _, out in runs:
            listed = len(msgspec.json.decode(out)) if extra else out.count(b"\n")
            if listed < count:
                raise fail(f"{label} listed {listed} entries, expected {count}")
        median = statistics.median(seconds for seconds, _ in runs)
        figures.append(Figure(f"{label}, {count} nodes (median of 3)", median, "s", 2.0))
    # Reference: the same listing fetched by curl, i.e. the HTTP transfer alone.
    curl = ["curl", "-sf", "-H", f"Authorization: Bearer {stack.token}", f"{stack.api}/nodes"]
    curl_median = statistics.median([(await timed(curl, env))[0] for _ in range(3)])
    for f in figures:
        f.reference, f.reference_name = curl_median, "curl GET /nodes"
    return figures


async def timed(argv: list[str], env: dict[str, str]) -> tuple[float, bytes]:
    """Wall time of a command, start to exit, and its output; fails if it fails."""
    start = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await proc.communicate()
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise fail(f"{' '.join(argv)} exited with {proc.returncode}: {err.decode()[-500:]}")
    return seconds, out


async def run(count: int, concurrency: int, events: int, offset: int) -> Report:
    width = max(5, len(str(count)))
    hosts = f"n[{1:0{width}d}-{count:0{width}d}]"
    nodes: list[str] = hostlist.expand_hostlist(hosts)
    async with running_stack(offset) as stack:
        headers = {"Authorization": f"Bearer {stack.token}", "Content-Type": "application/json"}
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(
            base_url=stack.api, headers=headers, limits=limits, timeout=300
        ) as http:
            profile = Profile(name=PROFILE, kernel=Kernel(args=["quiet"]))
            check(await http.put(f"/profiles/{PROFILE}", content=msgspec.json.encode(profile)))
            figures = await bench_bulk(http, hosts, count)
            figures += await bench_put(http, nodes, concurrency, stack.nats)
            event_figures, method = await bench_events(http, stack.nats, nodes[:events])
            figures += event_figures
        figures += await bench_list(stack, count)
    return Report(
        nodes=count,
        concurrency=concurrency,
        cpus=len(os.sched_getaffinity(0)),
        python=platform.python_version(),
        event_method=method,
        figures=figures,
    )


def table(report: Report) -> str:
    lines = [
        f"wolfpack registry benchmark: {report.nodes} nodes, {report.concurrency} in flight, "
        f"{report.cpus} CPUs, Python {report.python}",
        "",
        f"{'measure':<52} {'value':>12}  {'goal':<10} {'':<6} {'reference':>24}  ratio",
    ]
    for f in report.figures:
        value = f"{f.value:,.0f} {f.unit}" if f.unit == "nodes/s" else f"{f.value:.2f} {f.unit}"
        goal, verdict, ref, ratio = "", "", "", ""
        if f.goal is not None:
            goal, verdict = f"< {f.goal:g} {f.unit}", "ok" if f.value < f.goal else "MISSED"
        if f.reference:
            ref = f"{f.reference_name} {f.reference:.2f} {f.unit}"
            ratio = f"{f.value / f.reference:.2f}x"
        lines.append(f"{f.measure:<52} {value:>12}  {goal:<10} {verdict:<6} {ref:>24}  {ratio}")
    return "\n".join([*lines, "", report.event_method])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--nodes", type=int, default=10_000, help="nodes to create (10000)")
    parser.add_argument("--concurrency", type=int, default=8, help="PUTs in flight (8)")
    parser.add_argument("--events", type=int, default=1000, help="event samples (1000)")
    parser.add_argument("--port-offset", type=int, default=300, help="added to every port (300)")
    parser.add_argument("--json", action="store_true", help="print machine-readable results")
    args = parser.parse_args(argv)
    if args.nodes < 2 or args.concurrency < 1 or args.events < 2:
        parser.error("--nodes and --events need at least 2, --concurrency at least 1")
    report = asyncio.run(
        run(args.nodes, args.concurrency, min(args.events, args.nodes), args.port_offset)
    )
    print(msgspec.json.format(msgspec.json.encode(report)).decode() if args.json else table(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
