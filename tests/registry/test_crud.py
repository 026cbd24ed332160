"""Registry API: create, read, replace, patch and delete nodes and profiles over real HTTP."""

from __future__ import annotations

import httpx

API = "/api/v1"


async def test_profile_and_node_lifecycle(api: httpx.AsyncClient) -> None:
    r = await api.put(f"{API}/profiles/compute", json={"kernel": {"args": ["quiet"]}})
    assert r.status_code == 201, r.text
    assert r.json()["revision"] > 0
    node = {
        "profiles": ["compute"],
        "network_devices": {"default": {"hwaddr": "AA-BB-CC-00-00-01", "ipaddr": "10.0.0.5"}},
    }
    r = await api.put(f"{API}/nodes/n01", json=node)
    assert r.status_code == 201, r.text
    stored = r.json()
    assert stored["name"] == "n01"
    # MACs are normalized on the way in, so every later lookup agrees on one spelling.
    assert stored["network_devices"]["default"]["hwaddr"] == "aa:bb:cc:00:00:01"
    assert r.headers["etag"] == f'"{stored["revision"]}"'

    r = await api.get(f"{API}/nodes/n01")
    assert r.status_code == 200
    assert r.json() == stored

    r = await api.patch(f"{API}/nodes/n01", json={"image": "rocky9", "tags": {"rack": "r1"}})
    assert r.status_code == 200, r.text
    patched = r.json()
    assert patched["image"] == "rocky9" and patched["tags"] == {"rack": "r1"}
    assert patched["network_devices"] == stored["network_devices"]
    assert patched["revision"] > stored["revision"]

    # null removes a field: the node inherits again.
    r = await api.patch(f"{API}/nodes/n01", json={"image": None})
    assert "image" not in r.json()

    listing = (await api.get(f"{API}/nodes")).json()
    assert [n["name"] for n in listing] == ["n01"]

    r = await api.delete(f"{API}/nodes/n01")
    assert r.status_code == 204
    assert (await api.get(f"{API}/nodes/n01")).status_code == 404
    assert (await api.get(f"{API}/nodes")).json() == []


async def test_put_replaces_whole_node(api: httpx.AsyncClient) -> None:
    await api.put(f"{API}/nodes/n02", json={"image": "a", "comment": "old"})
    r = await api.put(f"{API}/nodes/n02", json={"image": "b"})
    assert r.status_code == 200
    assert r.json()["image"] == "b" and "comment" not in r.json()


async def test_create_only_refuses_existing(api: httpx.AsyncClient) -> None:
    assert (
        await api.put(f"{API}/profiles/p", json={}, headers={"If-None-Match": "*"})
    ).status_code == 201
    r = await api.put(f"{API}/profiles/p", json={"comment": "x"}, headers={"If-None-Match": "*"})
    assert r.status_code == 409
    assert "already exists" in r.json()["error"]
    assert "comment" not in (await api.get(f"{API}/profiles/p")).json()


async def test_merged_view_with_provenance(api: httpx.AsyncClient) -> None:
    await api.put(
        f"{API}/profiles/default",
        json={
            "kernel": {"args": ["quiet", "crashkernel=no"]},
            "image": "base",
            "system_overlay": ["wwinit", "hostname"],
        },
    )
    await api.put(
        f"{API}/profiles/compute",
        json={"profiles": ["default"], "image": "rocky9", "kernel": {"args": ["console=ttyS0"]}},
    )
    await api.put(
        f"{API}/nodes/n07",
        json={
            "profiles": ["compute"],
            "system_overlay": ["~hostname", "site"],
            "network_devices": {"default": {"ipaddr": "10.10.0.17"}},
        },
    )
    r = await api.get(f"{API}/nodes/n07", params={"merged": "true"})
    assert r.status_code == 200, r.text
    merged, provenance = r.json()["node"], r.json()["provenance"]
    assert merged["image"] == "rocky9"
    assert provenance["image"] == "compute"
    assert merged["kernel"]["args"] == ["quiet", "crashkernel=no", "console=ttyS0"]
    assert provenance["kernel.args"] == ["default", "default", "compute"]
    assert merged["system_overlay"] == ["wwinit", "site"]
    assert merged["network_devices"]["default"]["ipaddr"] == "10.10.0.17"
    assert provenance["network_devices.default.ipaddr"] == "n07"


async def test_profile_in_use_cannot_be_deleted(api: httpx.AsyncClient) -> None:
    await api.put(f"{API}/profiles/base", json={})
    await api.put(f"{API}/nodes/n1", json={"profiles": ["base"]})
    r = await api.delete(f"{API}/profiles/base")
    assert r.status_code == 409
    assert "n1" in r.json()["error"]
    assert (await api.get(f"{API}/profiles/base")).status_code == 200


async def test_unknown_objects_are_404(api: httpx.AsyncClient) -> None:
    for method, path in [
        ("GET", "/nodes/nope"),
        ("DELETE", "/nodes/nope"),
        ("PATCH", "/nodes/nope"),
        ("GET", "/profiles/nope"),
    ]:
        r = await api.request(method, f"{API}{path}", json={} if method == "PATCH" else None)
        assert r.status_code == 404, (method, path, r.text)
        assert "nope" in r.json()["error"]
