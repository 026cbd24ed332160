"""Events benchmark (not a test): the relay path against publishing right after the write.

    python -m bench.events [--writes 10000] [--in-flight 8] [--rounds 2] [--json]

One nats-server of its own. Each round runs both paths on fresh keys of KV `nodes`, in turn:
- direct: `put` then `publish` of the event, as wolfpack did before the relay (an event lost
  if the writer dies in between);
- relay: `put` carrying the event in its headers; a relay in the same process (as in each
  service) publishes it from the bucket's change stream with a message id.
Writes/s counts acknowledged writes (W writes, F in flight). Latency is from the start of a
write to a core-NATS subscriber on `wolfpack.node.*.updated` receiving its event. The relay
path must keep p95 under 20 ms and at least 90 % of the direct write rate (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import msgspec
from nats.aio.msg import Msg

from libs.common import names, subjects
from libs.common.bus.announce import Announcement
from libs.common.bus.connection import Bus
from libs.common.bus.kv import Bucket
from libs.common.bus.relay import Relay
from libs.common.bus.server import NatsServer, free_port
from libs.common.models.events import ChangeEvent
from libs.common.models.node import Node


class Run(msgspec.Struct):
    path: str
    writes: int
    in_flight: int
    writes_per_second: float
    p50_ms: float
    p95_ms: float


def event(name: str) -> ChangeEvent:
    return ChangeEvent(kind="node", name=name, action="updated", revision=0, fields=["comment"])


async def one_run(bus: Bus, nodes: Bucket[Node], path: str, prefix: str, writes: int,
                  in_flight: int) -> Run:  # fmt: skip
    started: dict[str, float] = {}
    latency: list[float] = []
    all_seen = asyncio.Event()

    async def seen(msg: Msg) -> None:
        name = subjects.parse(msg.subject).name
        if name.startswith(prefix) and name in started:
            latency.append(time.perf_counter() - started.pop(name))
            if len(latency) == writes:
                all_seen.set()

    sub = await bus.nc.subscribe(subjects.every("node", "updated"), cb=seen)
    await bus.nc.flush()
    gate = asyncio.Semaphore(in_flight)

    async def write(i: int) -> None:
        name = f"{prefix}{i}"
        async with gate:
            started[name] = time.perf_counter()
            value = Node(comment=f"write {i}")
            subject = subjects.node(name, "updated")
            if path == "relay":
                await nodes.put(name, value, Announcement(subject, event(name)))
            else:
                revision = await nodes.put(name, value)
                await bus.publish(subject, msgspec.structs.replace(event(name), revision=revision))

    begun = time.perf_counter()
    await asyncio.gather(*(write(i) for i in range(writes)))
    elapsed = time.perf_counter() - begun
    await asyncio.wait_for(all_seen.wait(), 60)
    await sub.unsubscribe()
    ms = sorted(x * 1000 for x in latency)
    return Run(
        path=path,
        writes=writes,
        in_flight=in_flight,
        writes_per_second=writes / elapsed,
        p50_ms=statistics.median(ms),
        p95_ms=ms[int(len(ms) * 0.95) - 1],
    )


async def main(writes: int, in_flight: int, rounds: int) -> list[Run]:
    with tempfile.TemporaryDirectory() as folder:
        server = NatsServer(Path(folder), port=free_port())
        await server.start()
        try:
            bus = await Bus.connect(server.url, "bench-events")
            nodes = await bus.bucket(names.BUCKET_NODES, Node)
            relay = Relay(bus, names.BUCKET_NODES)
            runs = []
            for r in range(rounds):
                for flight in (in_flight, 1):
                    count = writes if flight > 1 else max(writes // 10, 100)
                    # Alternate which path goes first, so neither always gets a warmer server.
                    order = ("direct", "relay") if r % 2 == 0 else ("relay", "direct")
                    for path in order:
                        if path == "relay":
                            await relay.start()
                        runs.append(
                            await one_run(
                                bus, nodes, path, f"r{r}f{flight}{path[0]}", count, flight
                            )
                        )
                        if path == "relay":
                            await relay.stop()
            await bus.close()
            return runs
        finally:
            await server.stop()


def summary(runs: list[Run]) -> str:
    lines = ["path    writes  in flight  writes/s   p50 ms  p95 ms"]
    for run in runs:
        lines.append(
            f"{run.path:7} {run.writes:6} {run.in_flight:9} {run.writes_per_second:9.0f} "
            f"{run.p50_ms:8.2f} {run.p95_ms:7.2f}"
        )
    for flight in sorted({run.in_flight for run in runs}, reverse=True):

        def rate(path: str, flight: int = flight) -> float:
            return statistics.median(
                r.writes_per_second for r in runs if r.path == path and r.in_flight == flight
            )

        def p95(path: str, flight: int = flight) -> float:
            return statistics.median(
                r.p95_ms for r in runs if r.path == path and r.in_flight == flight
            )

        lines.append(
            f"{flight} in flight: relay/direct write rate {rate('relay') / rate('direct'):.2f}x "
            f"(goal >= 0.90); p95 relay {p95('relay'):.1f} ms vs direct {p95('direct'):.1f} ms "
            "(goal < 20 ms)"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=10_000)
    parser.add_argument("--in-flight", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    found = asyncio.run(main(args.writes, args.in_flight, args.rounds))
    if args.json:
        sys.stdout.write(msgspec.json.encode(found).decode() + "\n")
    else:
        print(summary(found))
