"""Crash and restart: during a storm of node edits and image builds, every process of a real
`wolfpack up` (the five services and nats-server) is killed with SIGKILL at random moments;
its supervisor starts it again. Afterwards the stack must have converged:

- every write the API accepted is in the registry (and nothing it deleted);
- every accepted image job ended, and KV `images` holds the last one's source;
- every node's manifest in KV `boot` is what a fresh full render of that state gives;
- every blob the manifests and images name is in the store, whole;
- every service is back on NATS by itself: a last edit goes registry → overlayd → KV → bootd,
  a last build goes through the builder, a TFTP read is reported by tftpd;
- an event handled twice changes nothing.

The figures (kills, events replayed, writes accepted vs present) are printed for the docs.
WOLFPACK_TEST_SEED=n replays one run's schedule of kills and edits (tests/seeds.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Final

import httpx
import pytest

from libs.common import names, subjects
from libs.common.models.boot_stage import BootStage
from libs.common.models.events import ChangeEvent
from libs.common.models.image import ImageMeta
from libs.common.models.node import Node
from libs.common.models.overlay import BootManifest
from tests.builder.helpers import generations
from tests.faults.chaos import (
    Killer,
    blob_path,
    converged,
    following_jobs,
    served_script,
    stack_processes,
)
from tests.faults.storm import IMAGES, Storm, mac
from tests.seeds import seeded_random
from tests.stack import UpStack, connected_bus, overlayd_settled, start_up

KILLS_EACH: Final = 2
# Then this many rounds of two processes killed at the same instant.
PAIRS: Final = 3
CONVERGE_WITHIN: Final = 120.0


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Image archives that differ in one file (/etc/generation)."""
    return generations(tmp_path_factory.mktemp("sources"), 8)


@pytest.fixture
def up(tmp_path: Path) -> Iterator[UpStack]:
    with start_up(tmp_path / "data") as stack:
        yield stack


@pytest.fixture
async def client(up: UpStack) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {up.token}"}
    async with httpx.AsyncClient(headers=headers, timeout=30.0, trust_env=False) as http:
        yield http


async def chaos(killer: Killer, rng: random.Random, storm: Storm) -> None:
    victims = [[p] for p in stack_processes() * KILLS_EACH]
    rng.shuffle(victims)
    victims += [rng.sample(stack_processes(), 2) for _ in range(PAIRS)]
    for together in victims:
        # A random moment: this pause is the point, not a wait for something.
        await asyncio.sleep(rng.uniform(0.2, 2.0))
        together_note = f" (killed together: {' and '.join(together)})" * (len(together) > 1)
        for kill in await killer.kill_together(together):
            print(
                f"killed {kill.process} pid {kill.old_pid} → {kill.new_pid} in "
                f"{kill.recovered_in:.1f}s, {kill.pending_events} events pending{together_note}"
            )
    storm.running = False


async def test_the_stack_converges_after_every_process_is_killed_mid_storm(
    up: UpStack, client: httpx.AsyncClient, sources: list[Path], tmp_path: Path
) -> None:
    rng = seeded_random()
    async with following_jobs(up.nats_url) as jobs:
        storm = Storm(up, client, jobs, rng)
        await storm.populate(sources)
        killer = Killer(up)
        await asyncio.gather(chaos(killer, rng, storm), *storm.workers(sources))

        # Every process is back on NATS by itself: one last edit and build go all the way.
        # n000 gets 127.0.0.1, so tftpd's read below is credited to it.
        await storm.put_node(0)
        last = {
            "kernel": {"args": ["last-edit"]},
            "network_devices": {"default": {"ipaddr": "127.0.0.1"}},
        }
        await storm.patch("nodes", "n000", last)
        await storm.import_image(IMAGES[0], sources[0])

    ledger = storm.ledger
    assert not ledger.server_errors, ledger.server_errors[:5]

    # Every accepted write is present (or superseded by a later accepted one).
    missing = await storm.missing_writes()
    assert not missing, f"{len(missing)} accepted writes are not in the registry: {missing[:5]}"
    expected = ledger.expected()

    # Every accepted image job ended, and the image is the last job's source.
    assert set(storm.job_endings) == set(storm.accepted_jobs)
    assert set(storm.job_endings.values()) == {"built"}, storm.job_endings
    async with connected_bus(up.nats_url, "test-faults-check") as bus:
        images = await (await bus.bucket(names.BUCKET_IMAGES, ImageMeta)).items()
        for name, last_source in storm.last_source.items():
            assert images[name].source == last_source, name

        # KV boot is a fresh full render of the final state, for every node that exists.
        manifests = await converged(up, tmp_path / "fresh", CONVERGE_WITHIN)
        alive = {name for (kind, name), body in expected.items() if kind == "nodes" and body}
        assert set(manifests) == alive
        assert "last-edit" in manifests["n000"].kernel_args

        # Every blob named is there, whole.
        named = {
            digest
            for m in manifests.values()
            for digest in (m.kernel_digest, m.image_digest, m.runtime_digest, *m.system_digests)
            if digest
        }
        named |= {d for i in images.values() for d in (i.kernel_digest, i.image_digest)}
        for digest in named:
            path = blob_path(up.data, digest)
            assert path.is_file(), f"{digest} is named but not stored"
            assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, f"{digest} is partial"

        # bootd follows KV again: the last edit is in n000's iPXE script.
        await served_script(client, f"{up.url('bootd')}/ipxe/{mac(0)}", "last-edit", 30)

        # tftpd follows KV and publishes again: a read from n000's address is its boot stage.
        stages = await bus.subscribe(subjects.node("n000", "boot"), BootStage)
        await asyncio.to_thread(tftp_read, up, "undionly.kpxe")
        async with asyncio.timeout(10):
            async for _, stage in stages:  # bootd's `ipxe` stage above comes on it too
                if stage.stage == "tftp":
                    break
        assert stage.ok and stage.file.endswith("undionly.kpxe"), stage

        # An event handled twice changes nothing: replay one; overlayd renders the node again
        # (one more wave) and no manifest moves.
        async def status() -> dict[str, Any]:
            answer = await client.get(storm.url("overlayd", "/status"))
            found: dict[str, Any] = answer.json()
            return found

        boot = await bus.bucket(names.BUCKET_BOOT, BootManifest)
        waves = (await overlayd_settled(up.nats_url, status))["waves"]
        before = {k: v.revision for k, v in (await boot.items()).items()}
        node = await (await bus.bucket(names.BUCKET_NODES, Node)).get("n000")
        replay = ChangeEvent(
            kind="node", name="n000", action="updated", revision=node.revision, fields=["kernel"]
        )
        await bus.publish(subjects.node("n000", "updated"), replay)
        assert (await overlayd_settled(up.nats_url, status))["waves"] > waves
        assert {k: v.revision for k, v in (await boot.items()).items()} == before

    kills = killer.kills
    print(
        f"FIGURES kills={len(kills)} survived={len(kills)} pairs={PAIRS} "
        f"events_replayed={sum(k.pending_events for k in kills)} "
        f"writes_accepted={len(ledger.writes)} writes_present={len(ledger.writes) - len(missing)} "
        f"image_jobs={len(storm.accepted_jobs)} refused={dict(ledger.refused)} "
        f"recovery_max={max(k.recovered_in for k in kills):.1f}s"
    )
    assert len(kills) == len(stack_processes()) * KILLS_EACH + 2 * PAIRS


def tftp_read(up: UpStack, file: str) -> None:
    port = names.TFTP_PORT + up.port_offset
    done = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", f"tftp://127.0.0.1:{port}/{file}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
