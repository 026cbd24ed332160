"""Admission control: with `--max-transfers 2`, two nodes that read slowly hold both transfer
slots; a third asking for a kernel or image is told at once to come back (503, Retry-After),
and gets it once a slot is free; iPXE scripts, small overlays and status never wait. The
Retry-After spread, in-process."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from libs.common import subjects
from libs.common.models.boot_stage import BootStage
from services.bootd.admission import MAX_RETRY, Admission
from tests.bootd.conftest import (
    Bootd,
    answered,
    boot_node,
    fresh_mac,
    public_blob,
    script_booting,
    start_bootd,
)
from tests.stack import RegistryProcess, connected_bus
from tests.stalled_get import StalledGet

BIG = 32 << 20  # well over the socket buffers: a node that stops reading holds its slot


@pytest.fixture(scope="module")
def limited(registry_process: RegistryProcess) -> Iterator[Bootd]:
    """A real bootd with `--max-transfers 2` beside the module's registry."""
    with start_bootd(registry_process, "--max-transfers", "2") as started:
        yield started


@pytest.fixture
async def client(limited: Bootd) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=limited.url, timeout=10) as http:
        yield http


async def counts(client: httpx.AsyncClient, limited: Bootd) -> dict[str, Any]:
    answer = await client.get("/api/v1/serving", headers=limited.auth)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()["admission"]
    return found


async def until_active(client: httpx.AsyncClient, limited: Bootd, active: int) -> None:
    """Wait until bootd says `active` transfers run (a finished one is counted out just after
    its last byte went to the kernel)."""
    await answered(
        client,
        "/api/v1/serving",
        lambda answer: answer.json()["admission"]["active"] == active,
        f"{active} transfers running",
        headers=limited.auth,
    )


async def test_over_the_limit_a_node_is_told_to_come_back(
    limited: Bootd, client: httpx.AsyncClient
) -> None:
    mac = fresh_mac()
    async with connected_bus(limited.nats_url, "admission-test") as bus:
        files = await boot_node(bus, limited.store, "adm1", mac, image=b"i" * BIG)
        await script_booting(client, mac)
        events = await bus.subscribe(subjects.node("adm1", "boot"), BootStage)
        image = f"/blobs/sha256/{files.manifest.image_digest}?wwid={mac}"
        before = await counts(client, limited)
        holders = [await StalledGet.ask(limited.url, image) for _ in range(2)]
        try:
            assert all(h.head.startswith(b"HTTP/1.1 200") for h in holders)
            assert (await counts(client, limited))["active"] == 2
            refused = await client.get(image)
            assert refused.status_code == 503
            assert 1 <= int(refused.headers["retry-after"]) <= MAX_RETRY
            assert "--max-transfers" in refused.json()["error"]
            # Never deferred: the script, small overlays, HEAD, status, health.
            assert "kernel --name" in (await client.get(f"/ipxe/{mac}")).text
            assert (await client.get(f"/system/{mac}")).content == b"".join(files.systems)
            assert (await client.head(image)).status_code == 200
            assert (await client.get("/api/v1/status", headers=limited.auth)).status_code == 200
            assert (await client.get("/healthz")).status_code == 200
            # One node finishes; the deferred one, asking again, gets the image.
            assert await holders[0].read_all() == BIG
            await until_active(client, limited, 1)
            retried = await client.get(image)
            assert retried.status_code == 200 and retried.content == files.image
        finally:
            for holder in holders:
                holder.close()
        await until_active(client, limited, 0)
        after = await counts(client, limited)
        assert after["admitted"] - before["admitted"] == 3
        assert after["deferred"] - before["deferred"] == 1
        assert after["peak"] == 2
        # The node's timeline: the deferral (a 503), then the image sent.
        seen: list[BootStage] = []
        async with asyncio.timeout(10):
            async for _, event in events:
                if event.stage == "image":
                    seen.append(event)
                if len(seen) == 4:
                    break
        await events.stop()
    # The deferral first (answered at once, while both slots were held), then three sent.
    assert [(e.ok, e.error) for e in seen] == [(False, "HTTP 503")] + [(True, "")] * 3
    assert sum(e.bytes == BIG for e in seen[1:]) >= 2  # the finished holder and the retry


async def test_deferred_nodes_are_told_different_waits(
    limited: Bootd, client: httpx.AsyncClient
) -> None:
    async with connected_bus(limited.nats_url, "admission-test") as bus:
        digest = await public_blob(bus, limited.store, client, b"k" * BIG)
    path = f"/blobs/sha256/{digest}"
    holders = [await StalledGet.ask(limited.url, path) for _ in range(2)]
    try:
        answers = await asyncio.gather(*(client.get(path) for _ in range(30)))
    finally:
        for holder in holders:
            holder.close()
    assert {a.status_code for a in answers} == {503}
    waits = [int(a.headers["retry-after"]) for a in answers]
    assert all(1 <= w <= MAX_RETRY for w in waits)
    assert len(set(waits)) > 3, waits
    await until_active(client, limited, 0)


# -- the Admission in-process --


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_limit_then_a_free_slot() -> None:
    admission = Admission(2)
    assert admission.enter() is None and admission.enter() is None
    wait = admission.enter()
    assert wait is not None and 1 <= wait <= MAX_RETRY
    admission.leave(3.0)
    assert admission.enter() is None
    found = admission.counts()
    assert (found.active, found.admitted, found.deferred, found.peak) == (2, 3, 1, 2)


def test_no_limit() -> None:
    admission = Admission(0)
    assert all(admission.enter() is None for _ in range(10_000))
    assert admission.counts().deferred == 0


def test_waits_spread_with_the_queue_and_shrink_when_it_has_passed() -> None:
    clock = Clock()
    admission = Admission(4, rng=random.Random(6), clock=clock)
    for _ in range(4):
        assert admission.enter() is None
    for _ in range(4):
        admission.leave(2.0)  # transfers take about 2 s here
        assert admission.enter() is None
    waits = [admission.enter() for _ in range(400)]
    assert all(w is not None and 1 <= w <= MAX_RETRY for w in waits)
    early, late = waits[:20], waits[-100:]
    # The first few come back within a second or two; later ones are spread over the minute.
    assert max(w for w in early if w is not None) <= 11
    assert len(set(late)) > 30
    assert admission.counts().waiting == 400
    clock.now += MAX_RETRY + 1  # every deferred node came back (and went): the queue is gone
    assert admission.counts().waiting == 0
    wait = admission.enter()
    assert wait is not None and wait <= 2


def test_a_negative_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="limit"):
        Admission(-1)
