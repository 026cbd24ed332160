"""A three-server NATS cluster as wolfpack's state store: every stream and bucket in three
copies, and a SIGKILL of the bucket's leader in the middle of a write storm loses no write and
no event (the relay rides out the election)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from pathlib import Path

import click
import msgspec
import nats.errors
import pytest
from nats.js import api

from libs.common import names, subjects
from libs.common.bus.cluster import ClusterMember, write_config
from libs.common.bus.connection import Bus
from libs.common.bus.relay import Relay
from libs.common.bus.replicas import replicas_for
from libs.common.bus.server import NatsServer
from libs.common.errors import WolfpackError
from libs.common.models.events import ChangeEvent
from libs.common.models.node import Node
from libs.runtime.settings_flags import to_cluster
from services.registry.collection import announcement
from tests.cluster.conftest import Cluster
from tests.waiting import eventually

WRITERS = 4
# After the kill: long enough for the election (6-7 s here) and writes after it.
AFTER_KILL = 12.0


@pytest.mark.parametrize(
    ("info", "replicas"),
    [
        ({}, 1),
        ({"cluster": "wp", "connect_urls": ["a:4222", "b:4222"]}, 1),
        ({"cluster": "wp", "connect_urls": ["a:4222", "b:4222", "c:4222"]}, 3),
        ({"cluster": "wp", "connect_urls": [f"h{i}:4222" for i in range(5)]}, 3),
        ({"connect_urls": ["a:4222", "b:4222", "c:4222"]}, 1),
    ],
)
def test_three_copies_on_a_cluster_of_three_or_more(info: dict[str, object], replicas: int) -> None:
    assert replicas_for(info) == replicas


async def copies(bus: Bus, stream: str) -> int:
    return (await bus.js.stream_info(stream)).config.num_replicas or 1


async def test_a_three_server_cluster_keeps_every_stream_and_bucket_three_times(
    cluster: Cluster,
) -> None:
    bus = await Bus.connect(cluster.urls, "test-cluster")
    try:
        assert bus.replicas == 3
        for stream in (names.STREAM, *(f"KV_{b}" for b in names.BUCKETS)):
            assert await copies(bus, stream) == 3, stream
            info = await bus.js.stream_info(stream)
            assert info.cluster is not None and len(info.cluster.replicas or []) == 2
    finally:
        await bus.close()


async def test_a_single_server_keeps_one_copy(nats_server: NatsServer) -> None:
    bus = await Bus.connect(nats_server.url, "test-single")
    try:
        assert bus.replicas == 1
        assert await copies(bus, names.STREAM) == 1
    finally:
        await bus.close()


async def stream_events(bus: Bus) -> list[ChangeEvent]:
    sub = await bus.js.subscribe(
        subjects.every("node"), ordered_consumer=True, deliver_policy=api.DeliverPolicy.ALL
    )
    found = []
    try:
        while True:
            msg = await sub.next_msg(10)
            found.append(msgspec.json.decode(msg.data, type=ChangeEvent))
            if msg.metadata.num_pending == 0:
                return found
    finally:
        await sub.unsubscribe()


async def test_the_buckets_leader_killed_mid_storm_loses_no_write_and_no_event(
    cluster: Cluster,
) -> None:
    bus = await Bus.connect(cluster.urls, "test-storm")
    relay = Relay(bus, names.BUCKET_NODES)
    await relay.start()
    nodes = await bus.bucket(names.BUCKET_NODES, Node)
    acknowledged: list[int] = []
    refused = 0
    running = True

    async def writer(w: int) -> None:
        nonlocal refused
        n = 0
        while running:
            name = f"w{w}n{n % 50}"
            try:
                acknowledged.append(
                    await nodes.put(
                        name, Node(comment=str(n)), announcement("node", name, "updated", [])
                    )
                )
                n += 1
            except (nats.errors.Error, WolfpackError, TimeoutError):
                refused += 1  # the election: not stored, or stored and not answered
                await asyncio.sleep(0.1)

    writers = [asyncio.create_task(writer(w)) for w in range(WRITERS)]
    try:
        await eventually(lambda: len(acknowledged) >= 200 or None, "writes", within=30)
        # The leader of the nodes bucket: the writes, and the relay's consumer of them.
        leader = (await bus.js.stream_info(f"KV_{names.BUCKET_NODES}")).cluster
        assert leader is not None and leader.leader is not None
        victim = next(
            s for s in cluster.servers if s.config and f'"{leader.leader}"' in s.config.read_text()
        )
        assert victim.pid is not None
        os.kill(victim.pid, signal.SIGKILL)
        before = len(acknowledged)
        await asyncio.sleep(AFTER_KILL)
        assert len(acknowledged) > before, "no write went through after the election"
    finally:
        running = False
        await asyncio.gather(*writers, return_exceptions=True)

    # The bucket keeps the newest 64 writes of each key: those still there are counted one by
    # one; the older ones had their events too (no revision past the last write, none twice).
    state = (await bus.js.stream_info(f"KV_{names.BUCKET_NODES}")).state
    every_write = set(range(state.first_seq, state.last_seq + 1))
    assert not state.num_deleted

    async def all_relayed() -> list[ChangeEvent] | None:
        events = await stream_events(bus)
        return events if {e.revision for e in events} >= every_write else None

    events = await eventually(all_relayed, "an event for every stored write", within=60)
    await relay.stop()
    await bus.close()
    counts = Counter(e.revision for e in events)
    assert max(counts.values()) == 1, {r: n for r, n in counts.items() if n > 1}
    assert max(counts) == state.last_seq
    assert {r for r in acknowledged if r >= state.first_seq} <= set(counts)
    assert refused > 0, "the kill never met a write: the test proved nothing"


def test_a_members_config_names_it_its_cluster_and_its_routes(tmp_path: Path) -> None:
    member = ClusterMember(
        server_name="rack-1",
        listen="10.0.0.1:6222",
        routes=("nats-route://10.0.0.2:6222", "nats-route://10.0.0.3:6222"),
    )
    (tmp_path / "auth.conf").write_text("authorization { token: x }\n")
    path = write_config(tmp_path / "server.conf", member, include=tmp_path / "auth.conf")
    text = path.read_text()
    assert 'server_name: "rack-1"' in text
    assert 'listen: "10.0.0.1:6222"' in text
    assert 'routes: ["nats-route://10.0.0.2:6222", "nats-route://10.0.0.3:6222"]' in text
    assert 'include "auth.conf"' in text
    assert path.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("bad", ["nats://10.0.0.2:6222", "nats-route://", "10.0.0.2:6222"])
def test_a_route_that_is_not_a_route_url_is_named(bad: str) -> None:
    with pytest.raises(click.BadParameter, match="nats-route://HOST:PORT"):
        to_cluster((bad,), "n1", "0.0.0.0:6222")


def test_no_route_is_no_cluster() -> None:
    assert to_cluster((), None, "0.0.0.0:6222") is None
