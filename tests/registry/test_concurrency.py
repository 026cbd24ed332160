"""Optimistic concurrency: If-Match on a stale revision loses with 409, exactly one racer wins."""

from __future__ import annotations

import asyncio

import httpx

API = "/api/v1"


async def test_stale_if_match_is_409_and_changes_nothing(api: httpx.AsyncClient) -> None:
    rev = (await api.put(f"{API}/nodes/n1", json={"comment": "a"})).json()["revision"]
    assert (
        await api.patch(f"{API}/nodes/n1", json={"comment": "b"}, headers={"If-Match": str(rev)})
    ).status_code == 200
    r = await api.patch(f"{API}/nodes/n1", json={"comment": "c"}, headers={"If-Match": str(rev)})
    assert r.status_code == 409
    assert "stale revision" in r.json()["error"]
    assert (await api.get(f"{API}/nodes/n1")).json()["comment"] == "b"


async def test_concurrent_writes_with_same_revision_exactly_one_wins(
    api: httpx.AsyncClient,
) -> None:
    rev = (await api.put(f"{API}/nodes/n1", json={})).json()["revision"]
    answers = await asyncio.gather(
        *(
            api.put(
                f"{API}/nodes/n1", json={"comment": f"writer {i}"}, headers={"If-Match": f'"{rev}"'}
            )
            for i in range(8)
        )
    )
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] + [409] * 7
    winner = next(a for a in answers if a.status_code == 200).json()
    assert (await api.get(f"{API}/nodes/n1")).json()["comment"] == winner["comment"]


async def test_concurrent_creates_of_one_name(api: httpx.AsyncClient) -> None:
    answers = await asyncio.gather(
        *(
            api.put(f"{API}/profiles/p", json={"comment": str(i)}, headers={"If-None-Match": "*"})
            for i in range(6)
        )
    )
    assert sorted(a.status_code for a in answers) == [201] + [409] * 5


async def test_delete_with_stale_revision(api: httpx.AsyncClient) -> None:
    rev = (await api.put(f"{API}/nodes/n1", json={})).json()["revision"]
    await api.patch(f"{API}/nodes/n1", json={"comment": "x"})
    r = await api.delete(f"{API}/nodes/n1", headers={"If-Match": str(rev)})
    assert r.status_code == 409
    assert (await api.get(f"{API}/nodes/n1")).status_code == 200
