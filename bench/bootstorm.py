"""Boot storm benchmark (not a test): bootd against nginx on the same blobs, in one run.

    python bench/bootstorm.py [--nodes 1000] [--manifests 10000] [--blob-mib 256]
                              [--image-mib 8] [--kernel-mib 8] [--max-transfers 64]
                              [--connections 8] [--rounds 4] [--repeats 5] [--json]

Starts a nats-server and `wolfpack run bootd --max-transfers N` (secure mode off: simulated
nodes cannot bind privileged ports) on a temporary DATA, writes --manifests boot manifests to
KV `boot` (all sharing one kernel, image and overlay set) and starts nginx on the same CAS,
configured as one would for speed: a worker per core, sendfile, tcp_nopush, long keep-alive
(bootd is one process; nginx gets every core). Then:
(a) blob throughput: --connections curl processes each fetching one --blob-mib blob --rounds
times over a kept-alive connection, from nginx then bootd, --repeats times alternated (goal:
bootd >= 0.9 x nginx; median and range of the per-round ratios, and each server's CPU seconds
per GB sent, which the other work on a shared host disturbs less than GB/s); and the first
and second serve of a new --blob-mib blob (the first is hashed before it is sent);
(b) storm: --nodes simulated nodes in a second process, all at once, each doing a whole HTTP
boot (script, kernel, image, system overlays, runtime overlay), every answer checked, a `503`
waited out as iPXE does (its Retry-After, then the same request again), with the boots
attempted and completed, the deferrals, the time to the last boot, and the script latency p95
(goals: every boot completes, p95 < 10 ms); (c) bootd's RSS with the manifests loaded (goal:
< 300 MB) and after the storm, and its `/api/v1/serving` counters.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from libs.common import names
from libs.common.bus.connection import Bus
from libs.common.bus.server import NatsServer, free_port
from libs.common.models.image import ImageMeta
from libs.common.models.overlay import BootManifest
from libs.common.store.cas import ContentStore

REPO = Path(__file__).resolve().parent.parent
NGINX_CONF = """
user root;
worker_processes {workers};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{port};
        location ~ "^/blobs/sha256/([0-9a-f]{{2}})([0-9a-f]{{62}})$" {{
            alias {cas}/sha256/$1/$1$2;
        }}
    }}
}}
"""

PROBE = r"""
import json, sys, time
import httpx

# One script request at a time while the storm runs: the latency a booting node sees.
times = []
with httpx.Client(timeout=30) as client:
    while True:
        t0 = time.perf_counter()
        client.get(sys.argv[1]).raise_for_status()
        times.append(time.perf_counter() - t0)
        if len(times) % 20 == 0 and open(sys.argv[2]).read() == "done":
            break
        time.sleep(0.005)
times.sort()
print(json.dumps({"probes": len(times), "p50_ms": times[len(times) // 2] * 1000,
                  "p95_ms": times[int(len(times) * 0.95) - 1] * 1000}))
"""

STORM = r"""
import asyncio, json, sys, time
from urllib.parse import urlsplit

# A node as iPXE is one: one HTTP/1.1 connection, one request at a time. Plain asyncio
# streams: a shared httpx pool scans all its connections on every request, which at
# thousands of nodes costs more than the boots.

class Node:
    def __init__(self, host, port):
        self.host, self.port, self.conn = host, port, None

    async def get(self, path, keep=False):
        # (status, headers, body if keep else its length); reconnects if the server closed.
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = await asyncio.open_connection(self.host, self.port, limit=1 << 20)
            reader, writer = self.conn
            try:
                writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())
                head = await reader.readuntil(b"\r\n\r\n")
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()
                if attempt == 2:
                    raise
                continue
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            headers = dict((k.lower(), v.strip()) for k, _, v in
                           (line.partition(":") for line in lines[1:] if line))
            left = int(headers.get("content-length", "0"))
            if keep:
                body = await reader.readexactly(left)
            else:
                body = left
                while left:
                    chunk = await reader.read(min(left, 1 << 20))
                    if not chunk:
                        raise ConnectionError(f"{path}: ended {left} bytes early")
                    left -= len(chunk)
            if headers.get("connection", "").lower() == "close":
                self.close()
            return status, headers, body

    def close(self):
        if self.conn is not None:
            self.conn[1].close()
            self.conn = None

async def fetch(node, path, waits):
    # A 503 with Retry-After is waited out and asked again, as iPXE's HTTP core does.
    while True:
        status, headers, size = await node.get(path)
        if status == 503 and "retry-after" in headers:
            waits.append(int(headers["retry-after"]))
            await asyncio.sleep(int(headers["retry-after"]))
            continue
        if status != 200 or size == 0:
            raise RuntimeError(f"GET {path}: {status}")
        return size

async def boot(base, mac, times, waits, done):
    parts = urlsplit(base)
    node = Node(parts.hostname, parts.port)
    try:
        t0 = time.perf_counter()
        status, _, script = await node.get(f"/ipxe/{mac}", keep=True)
        times.append(time.perf_counter() - t0)
        if status != 200:
            raise RuntimeError(f"script: {status}")
        urls = [w for line in script.decode().splitlines()
                if line.startswith(("kernel ", "initrd "))
                for w in line.split() if w.startswith("http")]
        if len(urls) < 4:
            raise RuntimeError(f"script without blobs: {script[:200]!r}")
        total = 0
        for url in urls:
            parts = urlsplit(url)
            total += await fetch(node, f"{parts.path}?{parts.query}", waits)
        done.append(time.perf_counter())
        return total
    finally:
        node.close()

async def main(base, macs):
    times, waits, done = [], [], []
    t0 = time.perf_counter()
    results = await asyncio.gather(*(boot(base, m, times, waits, done) for m in macs),
                                   return_exceptions=True)
    wall = time.perf_counter() - t0
    errors = [repr(r) for r in results if isinstance(r, BaseException)]
    sent = sum(r for r in results if isinstance(r, int))
    times.sort()
    done.sort()
    p95 = times[int(len(times) * 0.95) - 1] if times else 0
    print(json.dumps({"attempted": len(macs), "completed": len(results) - len(errors),
                      "wall": wall, "last_boot_s": done[-1] - t0 if done else 0,
                      "half_booted_s": done[len(done) // 2] - t0 if done else 0,
                      "deferrals": len(waits), "retry_after_max": max(waits, default=0),
                      "retry_after_mean": sum(waits) / len(waits) if waits else 0,
                      "errors": errors[:5], "error_count": len(errors),
                      "bytes": sent, "script_p95_ms": p95 * 1000,
                      "script_p50_ms": times[len(times) // 2] * 1000 if times else 0}))

asyncio.run(main(sys.argv[1], sys.argv[2:]))
"""


def mac(n: int) -> str:
    return f"52:54:{(n >> 24) & 255:02x}:{(n >> 16) & 255:02x}:{(n >> 8) & 255:02x}:{n & 255:02x}"


async def write_manifests(
    nats_url: str, store: ContentStore, count: int, image_mib: int, kernel_mib: int
) -> None:
    kernel = await store.put_bytes(os.urandom(kernel_mib << 20))
    image = await store.put_bytes(os.urandom(image_mib << 20))
    systems = [await store.put_bytes(os.urandom(64 << 10)) for _ in range(2)]
    runtime = await store.put_bytes(os.urandom(16 << 10))
    bus = await Bus.connect(nats_url, "bootstorm")
    try:
        boot = await bus.bucket(names.BUCKET_BOOT, BootManifest)
        sem = asyncio.Semaphore(64)

        async def put(i: int) -> None:
            async with sem:
                await boot.put(
                    f"n{i:05d}",
                    BootManifest(
                        node=f"n{i:05d}",
                        hwaddrs=[mac(i)],
                        kernel_digest=kernel,
                        image_digest=image,
                        system_digests=systems,
                        runtime_digest=runtime,
                        kernel_args=["quiet"],
                    ),
                )

        await asyncio.gather(*(put(i) for i in range(count)))
    finally:
        await bus.close()


async def publish(nats_url: str, kernel: str, image: str) -> None:
    """The blobs of the throughput rounds, as an image's kernel and image in KV `images`: bootd
    serves only what nodes boot."""
    bus = await Bus.connect(nats_url, "bootstorm")
    try:
        meta = ImageMeta(
            name="bootstorm",
            source="bench/bootstorm.py",
            kernel_digest=kernel,
            image_digest=image,
            kernel_version="bench",
            size=0,
            built_at=time.time(),
        )
        await (await bus.bucket(names.BUCKET_IMAGES, ImageMeta)).put(meta.name, meta)
    finally:
        await bus.close()


@contextlib.contextmanager
def nginx(prefix: Path, cas: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(workers=os.cpu_count() or 1, prefix=prefix, port=port, cas=cas)
    )
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(prefix), "-g", "daemon off;"])
    try:
        wait_for(f"http://127.0.0.1:{port}/", ok=(200, 403, 404))
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()
        proc.wait()


def wait_for(url: str, ok: tuple[int, ...] = (200,), headers: dict[str, str] | None = None) -> None:
    for _ in range(600):
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1, headers=headers).status_code in ok:
                return
        time.sleep(0.05)
    raise TimeoutError(url)


def throughput(url: str, size: int, connections: int, rounds: int) -> float:
    """GB/s of `connections` curls each fetching `url` `rounds` times on one connection."""
    args = ["curl", "-sf"] + ["-o", "/dev/null", url] * rounds
    t0 = time.perf_counter()
    procs = [subprocess.Popen(args) for _ in range(connections)]
    if any(p.wait() != 0 for p in procs):
        raise RuntimeError(f"a curl of {url} failed")
    return size * rounds * connections / (time.perf_counter() - t0) / 1e9


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) of `pid` and its child processes (nginx's
    workers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    total = 0
    for each in [pid, *map(int, children)]:
        fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def blob_rounds(
    servers: dict[str, tuple[str, int]], size: int, args: argparse.Namespace
) -> dict[str, object]:
    """Throughput of each server (name: (url, pid)) in alternated rounds: median GB/s, every
    round's GB/s, CPU seconds per GB; and bootd / nginx per round."""
    runs: dict[str, list[float]] = {name: [] for name in servers}
    cpu: dict[str, list[float]] = {name: [] for name in servers}
    gb = size * args.rounds * args.connections / 1e9
    for _ in range(args.repeats):
        for name, (url, pid) in servers.items():
            before = cpu_seconds(pid)
            runs[name].append(throughput(url, size, args.connections, args.rounds))
            cpu[name].append((cpu_seconds(pid) - before) / gb)
    ratios = [b / n for b, n in zip(runs["bootd"], runs["nginx"], strict=True)]
    figures: dict[str, object] = {}
    for name in servers:
        figures[f"{name}_gbps"] = statistics.median(runs[name])
        figures[f"{name}_gbps_runs"] = [round(x, 2) for x in runs[name]]
        figures[f"{name}_cpu_s_per_gb"] = round(statistics.median(cpu[name]), 3)
    figures["ratio"] = statistics.median(ratios)
    figures["ratio_range"] = [round(min(ratios), 2), round(max(ratios), 2)]
    return figures


def serve_seconds(url: str) -> float:
    """Seconds one curl takes to fetch `url` whole."""
    t0 = time.perf_counter()
    subprocess.run(["curl", "-sf", "-o", "/dev/null", url], check=True)
    return time.perf_counter() - t0


def serving_counts(base: str, data: Path) -> object:
    token = (data / names.TOKEN_FILE).read_text().strip()
    answer = httpx.get(f"{base}/api/v1/serving", headers={"Authorization": f"Bearer {token}"})
    return answer.raise_for_status().json()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--manifests", type=int, default=10000)
    parser.add_argument("--blob-mib", type=int, default=256)
    parser.add_argument("--image-mib", type=int, default=8)
    parser.add_argument("--kernel-mib", type=int, default=8)
    parser.add_argument("--max-transfers", type=int, default=64)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bootstorm-"))
    data = tmp / "data"
    store = ContentStore(data / "cas")
    nats_server = NatsServer(tmp / "nats", port=free_port())
    asyncio.run(nats_server.start())
    bootd = None
    try:
        port = free_port()
        env = {**os.environ, "WOLFPACK_BOOTD_SECURE": "false", "PYTHONUNBUFFERED": "1"}
        log = (tmp / "bootd.log").open("wb")
        bootd = subprocess.Popen(
            [sys.executable, "-m", "libs.runtime.cli", "run", "bootd", "--data", str(data),
             "--nats", nats_server.url, "--bind", "127.0.0.1",
             "--port-offset", str(port - names.PORTS["bootd"]), "--log-level", "warning",
             "--max-transfers", str(args.max_transfers)],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        wait_for(f"{base}/healthz")
        asyncio.run(
            write_manifests(nats_server.url, store, args.manifests, args.image_mib, args.kernel_mib)
        )
        big = asyncio.run(store.put_bytes(os.urandom(args.blob_mib << 20)))
        # Stored now, first asked for below: its first serve is hashed first.
        fresh = asyncio.run(store.put_bytes(os.urandom(args.blob_mib << 20)))
        asyncio.run(publish(nats_server.url, big, fresh))
        wait_for(f"{base}/ipxe/{mac(args.manifests - 1)}")
        for digest in (big, fresh):  # bootd serves them once it has seen the image (304)
            wait_for(f"{base}/blobs/sha256/{digest}", (304,), {"if-none-match": f'"{digest}"'})
        figures: dict[str, object] = {"bootd_rss_mib": rss_mib(bootd.pid)}
        size = args.blob_mib << 20
        with nginx(tmp, data / "cas") as (nginx_url, nginx_pid):
            path = f"/blobs/sha256/{big}"
            throughput(f"{nginx_url}{path}", size, 2, 1)  # warm the page cache
            # Alternated rounds: this host's figures drift from one run to the next.
            servers = {
                "nginx": (f"{nginx_url}{path}", nginx_pid),
                "bootd": (f"{base}{path}", bootd.pid),
            }
            figures.update(blob_rounds(servers, size, args))
            # A new blob: its first serve is hashed first, the second comes from memory.
            url = f"{base}/blobs/sha256/{fresh}"
            figures["first_serve_s"] = round(serve_seconds(url), 3)
            figures["second_serve_s"] = round(serve_seconds(url), 3)
            figures["nginx_serve_s"] = round(serve_seconds(f"{nginx_url}/blobs/sha256/{fresh}"), 3)
        macs = [mac(i) for i in range(min(args.nodes, args.manifests))]
        flag = tmp / "storm.state"
        flag.write_text("running")
        probe = subprocess.Popen(
            [sys.executable, "-c", PROBE, f"{base}/ipxe/{mac(args.manifests - 1)}", str(flag)],
            stdout=subprocess.PIPE,
        )
        storm = subprocess.run(
            [sys.executable, "-c", STORM, base, *macs], capture_output=True, check=True
        )
        flag.write_text("done")
        probed, _ = probe.communicate(timeout=60)
        figures["storm"] = json.loads(storm.stdout)
        figures["script_while_storming"] = json.loads(probed)
        figures["bootd_rss_mib_after"] = rss_mib(bootd.pid)
        figures["serving"] = serving_counts(base, data)
        if args.json:
            print(json.dumps(figures, indent=2))
        else:
            for key, value in figures.items():
                print(f"{key:22} {value}")
    finally:
        if bootd is not None:
            bootd.terminate()
            bootd.wait()
        asyncio.run(nats_server.stop())
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
