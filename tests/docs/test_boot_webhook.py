"""docs/examples/boot_webhook.py run as a site runs it: a subprocess on a nats-server that wants
`wolfpack up`'s token, following real BootStage events, posting to a webhook on 127.0.0.1."""

from __future__ import annotations

import ast
import asyncio
import collections
import contextlib
import random
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from libs.common import names, subjects
from libs.common.bus.auth import ensure_nats_auth
from libs.common.bus.connection import Bus
from libs.common.bus.server import NatsServer, free_port
from libs.common.models.boot_stage import BootStage, Stage
from tests.docs.receiver import Webhook
from tests.seeds import seeded_random
from tests.stack import connected_bus
from tests.waiting import eventually

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "boot_webhook.py"
DURABLE = "boot-webhook"
STALL = 2.0
# The ack wait: how soon an event that a killed follower was posting comes back.
REDELIVER = 3.0
WITHIN = 30.0


class UpNats:
    """A nats-server wanting a client token, as `wolfpack up`'s does."""

    def __init__(self, server: NatsServer, token_file: Path) -> None:
        self.server = server
        self.url = server.url
        self.token_file = token_file


@pytest.fixture
async def up_nats(data_dir: Path) -> AsyncIterator[UpNats]:
    config = ensure_nats_auth(data_dir)
    server = NatsServer(data_dir / "nats", port=free_port(), config=config)
    await server.start()
    try:
        yield UpNats(server, data_dir / names.NATS_TOKEN_FILE)
    finally:
        await server.stop()


@pytest.fixture
async def bus(up_nats: UpNats) -> AsyncIterator[Bus]:
    token = up_nats.token_file.read_text().strip()
    async with connected_bus(up_nats.url, token=token) as connected:
        yield connected


@pytest.fixture
async def webhook() -> AsyncIterator[Webhook]:
    receiver = Webhook()
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()


class Example:
    """boot_webhook.py as a subprocess; its log kept for failure messages."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.log: list[str] = []
        self._reading: asyncio.Task[None] | None = None

    async def ready(self) -> None:
        """Returns once it follows the durable (it says so); its log is read on after."""
        assert self.process.stderr is not None
        async with asyncio.timeout(WITHIN):
            while not any("following" in line for line in self.log):
                line = await self.process.stderr.readline()
                assert line, f"boot_webhook.py ended before it followed:\n{self.shown()}"
                self.log.append(line.decode())
        self._reading = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stderr is not None
        async for line in self.process.stderr:
            self.log.append(line.decode())

    def shown(self) -> str:
        return "".join(self.log[-40:])

    async def kill(self, sig: int = signal.SIGKILL) -> int:
        if self.process.returncode is None:
            self.process.send_signal(sig)
        code = await self.process.wait()
        if self._reading is not None:
            await self._reading
        return code


@contextlib.asynccontextmanager
async def example(nats: UpNats, webhook_url: str, *flags: str) -> AsyncIterator[Example]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLE),
        "--url",
        webhook_url,
        "--nats",
        nats.url,
        "--nats-token-file",
        str(nats.token_file),
        "--stall-seconds",
        str(STALL),
        "--redeliver-seconds",
        str(REDELIVER),
        *flags,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    running = Example(process)
    try:
        await running.ready()
        yield running
    finally:
        await running.kill(signal.SIGTERM)


MAC = "52:54:00:12:34:{:02x}"
KERNEL = "/blobs/sha256/" + "1" * 64


def stage(node: str, name: Stage, *, error: str = "", number: int = 1) -> BootStage:
    """A stage as tftpd or bootd publishes it, for the node's NIC `number`."""
    mac = MAC.format(number)
    files = {"tftp": "ipxe.efi", "ipxe": f"/ipxe/{mac}", "runtime": f"/runtime/{mac}"}
    file = files.get(name, f"{KERNEL}?wwid={mac}")
    if name == "agent":
        file = "runtime applied " + "2" * 64
    return BootStage(
        node=node,
        stage=name,
        file=file,
        bytes=0 if error else 4096,
        remote=f"10.0.0.{number}:{900 + number}",
        hwaddr="" if name == "tftp" else mac,
        ok=not error,
        error=error,
    )


async def publish(bus: Bus, *stages: BootStage) -> list[int]:
    """Each stage on its node's subject; their stream sequences."""
    return [await bus.publish(subjects.node(s.node, "boot"), s) for s in stages]


async def settled(bus: Bus) -> None:
    """Every boot event is acked by the follower: each posted, or let go (booted, moved on)."""

    async def state() -> tuple[int, int]:
        info = await bus.js.consumer_info(names.STREAM, DURABLE)
        return info.num_pending, info.num_ack_pending

    await eventually(
        state, "the follower acked every event", within=WITHIN, until=lambda s: s == (0, 0)
    )


async def test_a_failed_and_a_stalled_boot_are_posted_once_and_a_good_boot_never(
    bus: Bus, up_nats: UpNats, webhook: Webhook
) -> None:
    async with example(up_nats, webhook.url) as running:
        await publish(bus, stage("good", "tftp"), stage("bad", "tftp", number=2))
        await publish(bus, stage("good", "ipxe"), stage("bad", "ipxe", number=2))
        # A deferral (bootd at --max-transfers) is a wait, not a failure.
        await publish(bus, stage("good", "kernel", error="HTTP 503"), stage("good", "kernel"))
        (failing,) = await publish(bus, stage("bad", "kernel", error="HTTP 404", number=2))
        await publish(bus, stage("slow", "ipxe", number=3), stage("slow", "kernel", number=3))
        (quiet,) = await publish(bus, stage("slow", "image", number=3))
        await publish(bus, stage("good", "image"), stage("good", "system"))
        await publish(bus, stage("good", "runtime"), stage("good", "agent"))
        # The running agent keeps fetching its runtime overlay: not a boot, never stalled.
        await publish(bus, stage("good", "runtime"))
        # A machine bootd cannot name: an ok script fetch, no stall of its own.
        await publish(bus, stage("unknown", "ipxe", number=9))
        await settled(bus)
        assert running.process.returncode is None, running.shown()
        assert await running.kill(signal.SIGTERM) == 0  # a clean stop

    posts = {p.body["node"]: p for p in webhook.posts}
    assert sorted(posts) == ["bad", "slow"], webhook.posts
    assert [p.status for p in webhook.posts] == [200, 200]
    bad, slow = posts["bad"], posts["slow"]
    assert bad.request_line == "POST /hooks/boot HTTP/1.1"
    assert bad.content_type == "application/json"
    assert bad.key == f"bad:{failing}:failed"
    assert bad.body["kind"] == "failed" and bad.body["stage"] == "kernel"
    assert bad.body["reason"] == "HTTP 404" and bad.body["hwaddr"] == MAC.format(2)
    assert bad.body["sequence"] == failing
    assert slow.key == f"slow:{quiet}:stalled"
    assert slow.body["kind"] == "stalled" and slow.body["stage"] == "image"
    assert slow.body["reason"] == "no boot stage for 2 s after image"
    assert slow.at - slow.body["at"] >= STALL  # not before its deadline


async def test_a_webhook_answering_500_gets_the_post_again_with_backoff_until_it_takes_it(
    bus: Bus, up_nats: UpNats, webhook: Webhook
) -> None:
    webhook.refuse["bad"] = 2
    # A longer ack wait lets the backoff grow past its first step (it stays under a third).
    async with example(up_nats, webhook.url, "--redeliver-seconds", "12"):
        (failing,) = await publish(bus, stage("bad", "system", error="HTTP 500"))
        await webhook.wait_delivered(1, WITHIN)
        await settled(bus)

    assert [p.status for p in webhook.posts] == [500, 500, 200]
    assert {p.key for p in webhook.posts} == {f"bad:{failing}:failed"}
    assert webhook.posts[0].body == webhook.posts[2].body
    first, second, third = (p.at for p in webhook.posts)
    assert 0.9 < second - first < third - second  # 1 s, then 2 s


async def test_a_killed_follower_loses_nothing_and_posts_nothing_twice(
    bus: Bus, up_nats: UpNats, webhook: Webhook
) -> None:
    async with example(up_nats, webhook.url) as first:
        # Before the kill: a failure posted, and a stall posted at its deadline.
        await publish(bus, stage("a", "kernel", error="HTTP 404"), stage("g", "ipxe"))
        await webhook.wait_delivered(2, WITHIN)
        # In flight at the kill: a boot begun (its stall deadline passes while the follower is
        # down or just back), one that will finish while it is down, and a failure whose post
        # the webhook has not answered yet.
        await publish(bus, stage("b", "ipxe"), stage("b", "kernel"), stage("e", "ipxe"))
        webhook.hold.add("c")
        await publish(bus, stage("c", "image", error="cut off: the node took nothing for 60 s"))
        async with asyncio.timeout(WITHIN):
            await webhook.holding.wait()
        assert await first.kill() == -signal.SIGKILL
        webhook.release.set()
        # While it is down: a new failure, e's boot ends well, f begins and stalls.
        await publish(bus, stage("d", "tftp", error="File not found"), stage("e", "agent"))
        await publish(bus, stage("f", "ipxe"))

    async with example(up_nats, webhook.url):
        await settled(bus)

    delivered = collections.Counter(p.key for p in webhook.delivered())
    assert max(delivered.values()) == 1, delivered  # nothing posted twice
    kinds = sorted((p.body["node"], p.body["kind"], p.body["stage"]) for p in webhook.delivered())
    assert kinds == [
        ("a", "failed", "kernel"),
        ("b", "stalled", "kernel"),
        ("c", "failed", "image"),
        ("d", "failed", "tftp"),
        ("f", "stalled", "ipxe"),
        ("g", "stalled", "ipxe"),
    ]
    # c's post, cut short by the kill, came again under its key once the ack wait ran out.
    (held,) = [p for p in webhook.posts if p.status is None]
    assert held.key in delivered


async def test_a_follower_back_after_the_retention_dropped_its_events_says_so(
    bus: Bus, up_nats: UpNats, webhook: Webhook
) -> None:
    async with example(up_nats, webhook.url):
        await publish(bus, stage("a", "kernel", error="HTTP 404"))
        await webhook.wait_delivered(1, WITHIN)
    # While it is down, more events, then the oldest dropped as retention would drop them.
    sequences = await publish(bus, *(stage(f"n{i}", "kernel", error="HTTP 404") for i in range(4)))
    info = await bus.js.stream_info(names.STREAM)
    info.config.max_msgs = 2  # a size limit that keeps n2 and n3 only
    await bus.js.update_stream(info.config)
    async with example(up_nats, webhook.url) as again:
        await settled(bus)
    told = [line for line in again.log if "fell behind" in line]
    assert told and f"events {sequences[0]}..{sequences[1]} were dropped" in told[0], again.log
    assert sorted(p.body["node"] for p in webhook.delivered()) == ["a", "n2", "n3"]


BOOT: tuple[Stage, ...] = ("tftp", "ipxe", "kernel", "image", "system", "runtime", "agent")
KILLS = 3
# Above the storm's length (~2 s), so no node's next stage comes after its stall deadline.
STORM_STALL = ("--stall-seconds", "5")


def boot_plan(rng: random.Random, node: str, number: int) -> tuple[str, list[BootStage]]:
    """A node's fate (boots, fails, stalls) and the stages it publishes."""
    fate = rng.choice(("boots", "fails", "stalls"))
    names = list(BOOT)
    if fate == "fails":
        names = names[: rng.randint(1, len(BOOT))]
    elif fate == "stalls":
        names = names[: rng.randint(1, BOOT.index("system") + 1)]
    stages = [stage(node, name, number=number) for name in names]
    if fate == "fails":
        stages[-1] = stage(node, names[-1], error="HTTP 404", number=number)
    if "kernel" in names and rng.random() < 0.5:  # bootd at --max-transfers once
        at = names.index("kernel")
        stages.insert(at, stage(node, "kernel", error="HTTP 503", number=number))
    return fate, stages


async def storm(
    bus: Bus, rng: random.Random, plans: dict[str, list[BootStage]]
) -> tuple[dict[str, int], float]:
    """Publishes the nodes' stages interleaved, each node's in order, spread over a few
    seconds (so that kills land in it); the stream sequence of each node's last stage, and
    the seconds it took."""
    started = time.monotonic()
    left = {node: list(stages) for node, stages in plans.items()}
    last: dict[str, int] = {}
    while left:
        node = rng.choice(sorted(left))
        (last[node],) = await publish(bus, left[node].pop(0))
        if not left[node]:
            del left[node]
        await asyncio.sleep(rng.uniform(0, 0.02))  # pacing the storm, not waiting for anything
    return last, time.monotonic() - started


async def test_kills_at_random_moments_lose_nothing_and_repeat_at_most_the_post_in_flight(
    bus: Bus, up_nats: UpNats, webhook: Webhook
) -> None:
    rng = seeded_random()
    fates: dict[str, str] = {}
    plans: dict[str, list[BootStage]] = {}
    for number in range(24):
        node = f"n{number:02}"
        fates[node], plans[node] = boot_plan(rng, node, number)
        if rng.random() < 0.2:
            webhook.refuse[node] = 1
    publishing: asyncio.Task[tuple[dict[str, int], float]] | None = None
    for _ in range(KILLS):
        async with example(up_nats, webhook.url, *STORM_STALL) as running:
            # The durable exists from the first start on: it sees every stage of the storm.
            publishing = publishing or asyncio.create_task(storm(bus, rng, plans))
            await asyncio.sleep(rng.uniform(0.2, 1.2))  # a random moment of its work
            assert await running.kill() == -signal.SIGKILL
    assert publishing is not None
    last, took = await publishing
    # Else a node's next stage could come after its deadline: a true stall, not a test's.
    assert took < float(STORM_STALL[1]), f"the storm took {took:.1f} s: a busy machine"
    async with example(up_nats, webhook.url, *STORM_STALL):
        await settled(bus)

    kinds = {"fails": "failed", "stalls": "stalled"}
    wanted = {f"{node}:{last[node]}:{kinds[fate]}" for node, fate in fates.items() if fate in kinds}
    delivered = collections.Counter(p.key for p in webhook.delivered())
    assert set(delivered) == wanted  # nothing lost, nothing made up
    # A kill between the webhook's 2xx and the ack repeats that one post, under its key.
    assert sum(delivered.values()) - len(delivered) <= KILLS, delivered


async def test_nats_going_away_and_coming_back_loses_nothing(
    bus: Bus, up_nats: UpNats, webhook: Webhook
) -> None:
    token = up_nats.token_file.read_text().strip()
    async with example(up_nats, webhook.url) as running:
        async with connected_bus(up_nats.url, token=token) as bus:
            (before,) = await publish(bus, stage("a", "kernel", error="HTTP 404"))
            await webhook.wait_delivered(1, WITHIN)
        await up_nats.server.stop()
        await up_nats.server.start()  # the same store: the stream and the durable are kept
        async with connected_bus(up_nats.url, token=token) as bus:
            (after,) = await publish(bus, stage("b", "image", error="HTTP 404"))
            (begun,) = await publish(bus, stage("c", "ipxe"))
            await webhook.wait_delivered(3, WITHIN)
            await settled(bus)
        assert running.process.returncode is None, running.shown()
    assert [p.key for p in webhook.delivered()] == [
        f"a:{before}:failed",
        f"b:{after}:failed",
        f"c:{begun}:stalled",
    ]


async def test_flags_are_checked_and_named() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLE),
        "--url",
        "http://127.0.0.1:9/",
        "--stall-seconds",
        "0",
        stderr=subprocess.PIPE,
    )
    _, err = await process.communicate()
    assert process.returncode == 2
    assert "--stall-seconds: must be a number of seconds above 0, not '0'" in err.decode()


async def test_a_nats_without_wolfpacks_stream_is_named(nats_server: NatsServer) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLE),
        "--url",
        "http://127.0.0.1:9/",
        "--nats",
        nats_server.url,
        stderr=subprocess.PIPE,
    )
    _, err = await process.communicate()
    assert process.returncode == 1
    assert f"no WOLFPACK stream at {nats_server.url}: is wolfpack running?" in err.decode()


def test_the_example_is_one_file_needing_nats_py_only() -> None:
    """A site copies the file alone: it imports the standard library and nats-py, no wolfpack."""
    tree = ast.parse(EXAMPLE.read_text())
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    tops = {name.split(".")[0] for name in imported}
    assert tops - sys.stdlib_module_names == {"nats"}
