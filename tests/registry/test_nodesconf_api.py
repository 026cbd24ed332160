"""Import and export of a Warewulf 4 nodes.conf through the API keep every field."""

from __future__ import annotations

from pathlib import Path

import httpx
import yaml

API = "/api/v1"
YAML = "application/yaml"
NODES_CONF = Path(__file__).parents[1] / "common" / "nodes" / "data" / "nodes.conf"


async def test_nodes_conf_round_trip(api: httpx.AsyncClient) -> None:
    text = NODES_CONF.read_text()
    r = await api.post(f"{API}/import", content=text, headers={"Content-Type": "application/yaml"})
    assert r.status_code == 200, r.text
    source = _load(text)
    assert sorted(r.json()["nodes"]) == sorted(source["nodes"])
    assert sorted(r.json()["profiles"]) == sorted(source["nodeprofiles"])

    exported = (await api.get(f"{API}/export", params={"secrets": "true"})).text
    again = _load(exported)
    assert _normal(again) == _normal(source)

    # The exported file imports again to the same state.
    before = (await api.get(f"{API}/nodes")).json()
    r = await api.post(
        f"{API}/import", content=exported, headers={"Content-Type": "application/yaml"}
    )
    assert r.status_code == 200
    after = (await api.get(f"{API}/nodes")).json()
    strip = lambda nodes: [{k: v for k, v in n.items() if k != "revision"} for n in nodes]  # noqa: E731
    assert strip(after) == strip(before)


def _load(text: str) -> object:
    # BaseLoader keeps every scalar a string, as Go's YAML reads them (no YAML 1.1
    # sexagesimal surprise turning an unquoted MAC into an int).
    return yaml.load(text, Loader=yaml.BaseLoader)


def _normal(doc: object) -> object:
    """Warewulf writes numbers and booleans as strings in places; compare by text."""
    if isinstance(doc, dict):
        return {str(k): _normal(v) for k, v in doc.items() if v not in (None, {}, [], "")}
    if isinstance(doc, list):
        return [_normal(v) for v in doc]
    if isinstance(doc, bool):
        return str(doc).lower()
    if isinstance(doc, str) and doc.lower() in ("true", "yes", "false", "no"):
        return "true" if doc.lower() in ("true", "yes") else "false"
    return str(doc)


async def test_export_masks_secrets_and_a_masked_import_keeps_them(
    api: httpx.AsyncClient,
) -> None:
    """An export without `?secrets=true` hides the IPMI password and asset key; importing it
    back (a backup restored onto the same registry) keeps the stored values."""
    r = await api.post(
        f"{API}/import", content=NODES_CONF.read_text(), headers={"Content-Type": YAML}
    )
    assert r.status_code == 200, r.text
    masked = (await api.get(f"{API}/export")).text
    assert "s3cr3t!" not in masked and "ASSET-0001" not in masked
    assert "********" in masked
    r = await api.post(f"{API}/import", content=masked, headers={"Content-Type": YAML})
    assert r.status_code == 200, r.text
    full = (await api.get(f"{API}/export", params={"secrets": "true"})).text
    assert "s3cr3t!" in full and "ASSET-0001" in full
    # A masked value where nothing is stored is not a value: refused, naming the field.
    r = await api.put(f"{API}/nodes/fresh", json={"ipmi": {"password": "********"}})
    assert r.status_code == 400 and r.json()["field"] == "ipmi.password", r.text
