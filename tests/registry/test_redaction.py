"""Secrets (IPMI password, asset key) never come back from the registry unless asked for with
`?secrets=true` and the token; what is sent back masked keeps the stored value."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.stack import RegistryProcess, start_registry

API = "/api/v1"
MASK = "********"


@pytest.fixture
async def secret_node(api: httpx.AsyncClient) -> tuple[str, str, str]:
    """A profile and a node holding recognisable secrets: (profile pw, node pw, asset key)."""
    profile_pw, node_pw, asset = (f"S-{secrets.token_hex(6)}" for _ in range(3))
    r = await api.put(f"{API}/profiles/bmc", json={"ipmi": {"password": profile_pw}})
    assert r.status_code == 201, r.text
    assert profile_pw not in r.text
    r = await api.put(
        f"{API}/nodes/n1",
        json={"profiles": ["bmc"], "asset_key": asset, "ipmi": {"password": node_pw}},
    )
    assert r.status_code == 201, r.text
    assert node_pw not in r.text and asset not in r.text  # the answer to a write too
    return profile_pw, node_pw, asset


async def test_every_read_masks_secrets(
    api: httpx.AsyncClient, secret_node: tuple[str, str, str]
) -> None:
    hidden = secret_node
    reads = [
        "/nodes",
        "/nodes?merged=true",
        "/nodes/n1",
        "/nodes/n1?merged=true",
        "/nodes?names=n[1-2]",
        "/profiles",
        "/profiles?merged=true",
        "/profiles/bmc",
        "/profiles/bmc?merged=true",
        "/export",
    ]
    for path in reads:
        r = await api.get(f"{API}{path}")
        assert r.status_code == 200, (path, r.text)
        assert not [s for s in hidden if s in r.text], path
        assert MASK in r.text, path
    r = await api.patch(f"{API}/nodes/n1", json={"comment": "edited"})
    assert r.status_code == 200 and not [s for s in hidden if s in r.text]
    merged = (await api.get(f"{API}/nodes/n1?merged=true")).json()
    assert merged["node"]["ipmi"]["password"] == MASK
    assert merged["provenance"]["ipmi.password"] == "n1"  # where it came from still shows


async def test_secrets_true_shows_them_to_the_token_holder(
    api: httpx.AsyncClient, secret_node: tuple[str, str, str]
) -> None:
    profile_pw, node_pw, asset = secret_node
    one = (await api.get(f"{API}/nodes/n1", params={"secrets": "true"})).json()
    assert (one["ipmi"]["password"], one["asset_key"]) == (node_pw, asset)
    listed = (await api.get(f"{API}/profiles", params={"secrets": "true"})).json()
    assert {p["name"]: p.get("ipmi", {}).get("password") for p in listed}["bmc"] == profile_pw
    merged = await api.get(f"{API}/nodes/n1", params={"merged": "true", "secrets": "true"})
    assert merged.json()["node"]["ipmi"]["password"] == node_pw


async def test_a_masked_secret_put_back_keeps_the_stored_one(
    api: httpx.AsyncClient, secret_node: tuple[str, str, str]
) -> None:
    _, node_pw, asset = secret_node
    node = (await api.get(f"{API}/nodes/n1")).json()
    node["comment"] = "read, edited, put back"
    r = await api.put(f"{API}/nodes/n1", json=node)
    assert r.status_code == 200, r.text
    r = await api.patch(f"{API}/nodes/n1", json={"ipmi": {"password": MASK}})
    assert r.status_code == 200, r.text
    stored = (await api.get(f"{API}/nodes/n1", params={"secrets": "true"})).json()
    assert (stored["ipmi"]["password"], stored["asset_key"]) == (node_pw, asset)
    assert stored["comment"] == "read, edited, put back"
    r = await api.patch(f"{API}/nodes/n1", json={"ipmi": {"password": "new-one"}})
    assert r.status_code == 200
    stored = (await api.get(f"{API}/nodes/n1", params={"secrets": "true"})).json()
    assert stored["ipmi"]["password"] == "new-one"


async def test_mask_for_nothing_stored_is_refused(api: httpx.AsyncClient) -> None:
    before = (await api.get(f"{API}/export")).text
    for method, path, body, field in [
        ("PUT", "/nodes/n9", {"asset_key": MASK}, "asset_key"),
        ("PUT", "/profiles/p9", {"ipmi": {"password": MASK}}, "ipmi.password"),
        ("POST", "/nodes:bulk", {"names": "b[1-2]", "ipmi": {"password": MASK}}, "ipmi.password"),
    ]:
        r = await api.request(method, f"{API}{path}", json=body)
        assert r.status_code == 400, (path, r.text)
        assert r.json()["field"] == field and "hidden secret" in r.json()["error"]
    assert (await api.get(f"{API}/export")).text == before


@pytest.fixture(scope="module")
def public_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    with start_registry(Path(tmp_path_factory.mktemp("public")), "--public-read") as process:
        yield process


async def test_public_reads_never_show_secrets(public_registry: RegistryProcess) -> None:
    token = {"Authorization": f"Bearer {public_registry.token}"}
    async with httpx.AsyncClient(base_url=f"{public_registry.url}{API}", timeout=30) as anyone:
        r = await anyone.put("/nodes/p1", json={"ipmi": {"password": "pub-s3cret"}}, headers=token)
        assert r.status_code == 201, r.text
        assert (await anyone.get("/nodes/p1")).json()["ipmi"]["password"] == MASK
        for path in ("/nodes/p1", "/nodes", "/export"):
            r = await anyone.get(path, params={"secrets": "true"})
            assert r.status_code == 401 and "pub-s3cret" not in r.text, path
        r = await anyone.get("/nodes/p1", params={"secrets": "true"}, headers=token)
        assert r.json()["ipmi"]["password"] == "pub-s3cret"
