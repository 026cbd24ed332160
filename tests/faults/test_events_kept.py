"""No event lost, none doubled: two registry replicas are SIGKILLed, one at a time, at random
moments of a write storm. Once they are back, every write stored in KV `nodes` and `profiles`
(acknowledged or not) has exactly one event with its revision in the WOLFPACK stream.

The relay runs inside the registry, so each kill also kills a relay at a random point: between
a write and its publish, between a publish and its ack."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import subprocess
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx
import msgspec
import pytest
from nats.js import api

from libs.common import names, subjects
from libs.common.bus.connection import Bus
from libs.common.bus.server import NatsServer, free_port
from libs.common.models.events import ChangeEvent
from tests.stack import connected_bus, run_service, stop_process, wait_healthy
from tests.waiting import NeverHappened, eventually

KILLS: Final = 10
WRITERS: Final = 8
# Enough keys that no key outlives its bucket's history (64) in the storm: then every write
# ever made is still in the bucket's stream to be counted.
KEYS: Final = 300
RECOVER_WITHIN: Final = 60.0
# Each bucket's revisions are its own: an event is known by its kind and revision.
RELAYED: Final = {"node": names.BUCKET_NODES, "profile": names.BUCKET_PROFILES}


@dataclass
class Replica:
    data: Path
    process: subprocess.Popen[bytes]
    url: str
    token: str
    log: Path


def start_replica(folder: Path, nats_url: str, started: list[subprocess.Popen[bytes]]) -> Replica:
    data = folder / "data"
    process, port, log = run_service("registry", data, nats_url)
    started.append(process)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, process, log)
    token = (data / names.TOKEN_FILE).read_text().strip()
    return Replica(data, process, url, token, log)


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Every registry process the test starts: all stopped at its end, whatever happened."""
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        stop_process(process)


@pytest.fixture
async def nats_url(tmp_path: Path) -> AsyncIterator[str]:
    server = NatsServer(tmp_path / "nats", port=free_port())
    await server.start()
    try:
        yield server.url
    finally:
        await server.stop()


class Storm:
    """Writers that PUT and DELETE nodes through whichever replica answers; the revisions
    the registry acknowledged."""

    def __init__(self, replicas: list[Replica], rng: random.Random) -> None:
        self.replicas = replicas
        self.rng = rng
        self.acknowledged: list[int] = []
        self.deletes = 0
        self.running = True

    async def writer(self) -> None:
        async with httpx.AsyncClient(timeout=10) as http:
            while self.running:
                replica = self.rng.choice(self.replicas)
                name = f"n{self.rng.randrange(KEYS)}"
                url = f"{replica.url}/api/v1/nodes/{name}"
                auth = {"Authorization": f"Bearer {replica.token}"}
                try:
                    if self.rng.random() < 0.1:
                        answer = await http.delete(url, headers=auth)
                        self.deletes += answer.status_code == 204
                        continue
                    body = {"comment": f"w{self.rng.randrange(10**6)}"}
                    answer = await http.put(url, json=body, headers=auth)
                except httpx.HTTPError:
                    await asyncio.sleep(0.05)  # the replica is being killed or restarted
                    continue
                if answer.status_code in (200, 201):
                    self.acknowledged.append(answer.json()["revision"])


async def kept_events(bus: Bus) -> list[tuple[str, ChangeEvent]]:
    info = await bus.js.stream_info(names.STREAM)
    if not info.state.messages:
        return []
    sub = await bus.js.subscribe(
        subjects.ALL, ordered_consumer=True, deliver_policy=api.DeliverPolicy.ALL
    )
    found = []
    try:
        while True:
            msg = await sub.next_msg(5)
            if msg.subject.split(".")[1] in ("node", "profile"):
                found.append((msg.subject, msgspec.json.decode(msg.data, type=ChangeEvent)))
            if msg.metadata.num_pending == 0:
                return found
    finally:
        await sub.unsubscribe()


async def stored_writes(bus: Bus) -> set[tuple[str, int]]:
    """Every write still in the relayed buckets' streams: (kind, revision)."""
    found = set()
    for kind, bucket in RELAYED.items():
        state = (await bus.js.stream_info(f"KV_{bucket}")).state
        if state.messages:
            assert not state.num_deleted, f"KV {bucket} dropped writes: grow KEYS"
            found |= {(kind, seq) for seq in range(state.first_seq, state.last_seq + 1)}
    return found


async def test_every_stored_write_has_exactly_one_event_after_random_kills(
    tmp_path: Path, nats_url: str, started: list[subprocess.Popen[bytes]]
) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    replicas = [start_replica(tmp_path / f"r{i}", nats_url, started) for i in range(2)]
    storm = Storm(replicas, rng)
    writers = [asyncio.create_task(storm.writer()) for _ in range(WRITERS)]
    try:
        for _ in range(KILLS):
            await asyncio.sleep(rng.uniform(0.2, 1.5))
            i = rng.randrange(len(replicas))
            victim = replicas[i]
            victim.process.kill()
            victim.process.wait()
            replicas[i] = await asyncio.to_thread(
                start_replica, victim.data.parent, nats_url, started
            )
        await asyncio.sleep(rng.uniform(0.2, 1.0))
    finally:
        storm.running = False
        await asyncio.gather(*writers, return_exceptions=True)

    async with connected_bus(nats_url) as bus:
        every_write = await stored_writes(bus)

        async def all_relayed() -> list[tuple[str, ChangeEvent]] | None:
            events = await kept_events(bus)
            return events if {(e.kind, e.revision) for _, e in events} >= every_write else None

        try:
            with contextlib.suppress(NeverHappened):  # what is missing is named below
                await eventually(all_relayed, "every write relayed", within=RECOVER_WITHIN)
        finally:
            for replica in replicas:
                stop_process(replica.process)
        # Late copies a restarted relay may still publish have had their time: read again.
        events = await kept_events(bus)

    context = f"seed {seed}; {len(storm.acknowledged)} acknowledged writes"
    counts = Counter((e.kind, e.revision) for _, e in events)
    missing = sorted(every_write - set(counts))
    assert not missing, f"{len(missing)} writes with no event, first {missing[:10]} ({context})"
    doubled = {revision: n for revision, n in counts.items() if n > 1}
    assert not doubled, f"writes with more than one event: {doubled} ({context})"
    assert set(counts) <= every_write, f"events for writes never made ({context})"
    assert {("node", revision) for revision in storm.acknowledged} <= set(counts), context
    for subject, event in events:
        assert subject == subjects.subject(event.kind, event.name, event.action), subject
    deleted = sum(1 for _, e in events if e.action == "deleted")
    assert deleted >= storm.deletes > 0, context
    assert len(storm.acknowledged) > 500, f"too small a storm to mean much ({context})"
