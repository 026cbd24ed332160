"""`POST /nodes:bulk`: a hostlist range with addresses counted up, all or nothing."""

from __future__ import annotations

import httpx

API = "/api/v1"


async def test_bulk_add_counts_addresses_up(api: httpx.AsyncClient) -> None:
    await api.put(f"{API}/profiles/compute", json={"kernel": {"args": ["quiet"]}})
    r = await api.post(
        f"{API}/nodes:bulk",
        json={
            "names": "n[01-20]",
            "profiles": ["compute"],
            "netname": "default",
            "ipaddr": "10.10.0.11",
            "ipmiaddr": "10.20.0.1",
            "network_devices": {"default": {"netmask": "255.255.0.0"}},
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["created"] == [f"n{i:02d}" for i in range(1, 21)]
    nodes = {n["name"]: n for n in (await api.get(f"{API}/nodes")).json()}
    assert len(nodes) == 20
    assert nodes["n07"]["network_devices"]["default"] == {
        "ipaddr": "10.10.0.17",
        "netmask": "255.255.0.0",
    }
    assert nodes["n20"]["ipmi"]["ipaddr"] == "10.20.0.20"
    merged = (await api.get(f"{API}/nodes/n07", params={"merged": "true"})).json()["node"]
    assert merged["kernel"]["args"] == ["quiet"]


async def test_bulk_refuses_existing_names_and_stores_nothing(api: httpx.AsyncClient) -> None:
    await api.put(f"{API}/nodes/n03", json={})
    r = await api.post(f"{API}/nodes:bulk", json={"names": "n[01-05]"})
    assert r.status_code == 409
    assert "n03" in r.json()["error"]
    assert [n["name"] for n in (await api.get(f"{API}/nodes")).json()] == ["n03"]


async def test_bulk_refuses_address_taken_by_another_node(api: httpx.AsyncClient) -> None:
    await api.put(f"{API}/nodes/old", json={"network_devices": {"default": {"ipaddr": "10.0.0.3"}}})
    r = await api.post(f"{API}/nodes:bulk", json={"names": "n[1-5]", "ipaddr": "10.0.0.1"})
    assert r.status_code == 409
    assert "10.0.0.3" in r.json()["error"] and "old" in r.json()["error"]
    assert [n["name"] for n in (await api.get(f"{API}/nodes")).json()] == ["old"]


async def test_bulk_bad_range_is_400(api: httpx.AsyncClient) -> None:
    r = await api.post(f"{API}/nodes:bulk", json={"names": "n[01-"})
    assert r.status_code == 400
    assert r.json()["field"] == "names"
