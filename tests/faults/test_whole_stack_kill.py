"""The whole stack killed at once, mid-storm: `wolfpack up` itself gets SIGKILL (as from the OOM
killer), so the kernel ends its services and nats-server together, with node edits and image
jobs in flight. The clients keep retrying; a new `wolfpack up` on the same DATA folder starts
while they do. Then every write it accepted before or after is there, every image job it
accepted ran (jobs are on the stream, so the new builder runs those the old one had not
finished), and KV `boot` is a fresh render of the final state.

WOLFPACK_TEST_SEED=n replays one run's moment and edits (tests/seeds.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Final

import httpx
import pytest

from tests.builder.helpers import generations
from tests.faults.chaos import converged, following_jobs
from tests.faults.storm import Storm
from tests.seeds import seeded_random
from tests.stack import start_up

BACK_WITHIN: Final = 120.0


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return generations(tmp_path_factory.mktemp("sources"), 4)


async def test_a_stack_killed_whole_mid_storm_comes_back_with_every_accepted_change(
    sources: list[Path], tmp_path: Path
) -> None:
    rng = seeded_random()
    data = tmp_path / "data"
    with contextlib.ExitStack() as stacks:
        first = stacks.enter_context(start_up(data))
        headers = {"Authorization": f"Bearer {first.token}"}
        async with (
            httpx.AsyncClient(headers=headers, timeout=30.0, trust_env=False) as client,
            following_jobs(first.nats_url) as jobs,
        ):
            storm = Storm(first, client, jobs, rng)
            await storm.populate(sources)
            workers = asyncio.gather(*storm.workers(sources))
            # A random moment of the storm: the point of this pause.
            await asyncio.sleep(rng.uniform(1.0, 4.0))
            accepted_before = len(storm.ledger.writes)
            running_jobs = len(set(storm.accepted_jobs) - set(storm.job_endings))
            first.process.kill()
            await asyncio.to_thread(first.process.wait)
            # Same folder, same ports: the clients, retrying, find the new stack.
            second = await asyncio.to_thread(
                stacks.enter_context, start_up(data, first.port_offset)
            )
            # A few more accepted writes after the restart, then the storm ends.
            async with asyncio.timeout(BACK_WITHIN):
                await storm.ledger.holds(accepted_before + 20)
            storm.running = False
            async with asyncio.timeout(BACK_WITHIN):
                await workers

            assert not storm.ledger.server_errors, storm.ledger.server_errors[:5]
            missing = await storm.missing_writes()
            assert not missing, f"{len(missing)} accepted writes were lost: {missing[:5]}"
            assert set(storm.job_endings) == set(storm.accepted_jobs)
            assert set(storm.job_endings.values()) == {"built"}, storm.job_endings
            manifests = await converged(second, tmp_path / "fresh", BACK_WITHIN)
            alive = {
                name for (kind, name), body in storm.ledger.expected().items()
                if kind == "nodes" and body
            }  # fmt: skip
            assert set(manifests) == alive
    print(
        f"FIGURES writes_accepted={len(storm.ledger.writes)} before_kill={accepted_before} "
        f"image_jobs={len(storm.accepted_jobs)} jobs_running_at_kill={running_jobs} "
        f"refused={dict(storm.ledger.refused)}"
    )
