"""Every change publishes an event on NATS, and only after the state it announces is stored."""

from __future__ import annotations

import asyncio

import httpx
import msgspec

from libs.common import subjects
from libs.common.models.events import ChangeEvent
from tests.stack import nats_client

API = "/api/v1"


async def test_every_change_is_an_event_published_after_the_store(
    api: httpx.AsyncClient, registry
) -> None:
    async with nats_client(registry.nats_url) as nc:
        seen: list[tuple[str, ChangeEvent, int | None]] = []
        # Arrival order; `seen` is in the order the read-back checks finish.
        arrived: list[tuple[str, ChangeEvent]] = []
        checks: list[asyncio.Task[None]] = []
        done = asyncio.Event()

        async def on_event(msg) -> None:
            event = msgspec.json.decode(msg.data, type=ChangeEvent)
            arrived.append((msg.subject, event))

            async def check() -> None:
                # What the event announces must already be readable.
                r = await api.get(f"{API}/{event.kind}s/{event.name}")
                current = r.json()["revision"] if r.status_code == 200 else None
                seen.append((msg.subject, event, current))
                if len(seen) == 6:
                    done.set()

            checks.append(asyncio.create_task(check()))

        await nc.subscribe(subjects.ALL, cb=on_event)
        await nc.flush()
        await api.put(f"{API}/profiles/compute", json={})
        await api.post(f"{API}/nodes:bulk", json={"names": "n[1-3]", "profiles": ["compute"]})
        await api.patch(f"{API}/nodes/n2", json={"image": "rocky9"})
        await api.delete(f"{API}/nodes/n3")
        await asyncio.wait_for(done.wait(), 10)
        await asyncio.gather(*checks)

    assert sorted(s for s, _, _ in seen) == sorted(
        [
            "wolfpack.profile.compute.updated",
            "wolfpack.node.n1.updated",
            "wolfpack.node.n2.updated",
            "wolfpack.node.n3.updated",
            "wolfpack.node.n2.updated",
            "wolfpack.node.n3.deleted",
        ]
    )
    for subject, event, current in seen:
        if event.action == "updated" and subject != "wolfpack.node.n3.updated":
            assert current is not None and current >= event.revision, (subject, event)
    patch_event = [e for s, e in arrived if s == "wolfpack.node.n2.updated"][-1]
    assert patch_event.fields == ["image"]
    assert all(e.kind in ("node", "profile") for _, e, _ in seen)


async def test_events_are_kept_in_the_stream(api: httpx.AsyncClient, registry) -> None:
    """A service that was down reads what it missed from the WOLFPACK stream."""
    await api.put(f"{API}/nodes/late", json={})
    async with nats_client(registry.nats_url) as nc:
        js = nc.jetstream()
        sub = await js.subscribe(subjects.node("late", "updated"), ordered_consumer=True)
        msg = await sub.next_msg(timeout=5)
        event = msgspec.json.decode(msg.data, type=ChangeEvent)
        assert event.name == "late" and event.action == "updated"


async def test_events_carry_no_secrets(api: httpx.AsyncClient, registry) -> None:
    async with nats_client(registry.nats_url) as nc:
        sub = await nc.subscribe(subjects.events_of("node", "bmc"))
        await nc.flush()
        await api.put(
            f"{API}/nodes/bmc", json={"ipmi": {"username": "admin", "password": "s3cret!"}}
        )
        msg = await sub.next_msg(timeout=5)
        assert b"s3cret!" not in msg.data
