"""An unknown MAC goes to the first discoverable node, through the real registry, which bootd
asks over NATS (subjects.DISCOVERY)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import msgspec

from libs.common import names, subjects
from libs.common.bus.connection import Bus
from libs.common.models.discovery import DiscoveryAnswer, DiscoveryClaim
from libs.common.models.node import Node
from tests.bootd.conftest import Bootd, answered, fresh_mac, start_bootd
from tests.stack import connected_bus, start_registry, stop_process

WAIT = 10.0


def owner(script: str, mac: str) -> str | None:
    """The node bootd's script says `mac` was given to, if it says so."""
    found = re.search(rf"MAC {mac.lower()} was given to node ([A-Za-z0-9-]+),", script)
    return found.group(1) if found else None


async def given(http: httpx.AsyncClient, mac: str) -> str:
    """Ask bootd for `mac`'s script until it names the node the MAC was given to (bootd's
    view of KV `nodes` can lag the registry's writes); that node."""
    answer = await answered(
        http,
        f"/ipxe/{mac}",
        lambda answer: owner(answer.text, mac) is not None,
        f"{mac} given to a node",
        within=WAIT,
    )
    node = owner(answer.text, mac)
    assert node is not None
    return node


async def ask(bus: Bus, payload: bytes) -> DiscoveryAnswer:
    """What the registry answers on the discovery subject to `payload`, as bootd sends it."""
    reply = await bus.nc.request(subjects.DISCOVERY, payload, timeout=WAIT)
    return msgspec.json.decode(reply.data, type=DiscoveryAnswer)


async def test_first_discoverable_node_gets_the_mac(
    bootd: Bootd, api: httpx.AsyncClient, http: httpx.AsyncClient
) -> None:
    # d3 is made discoverable last: bootd's view can lag the registry, and any view of it
    # that has d3 discoverable then has d2 too, so the first discoverable node is always d2.
    for name, discoverable in (("d3", None), ("d1", None), ("d2", True)):
        body = {"discoverable": discoverable} if discoverable else {}
        assert (await api.put(f"/api/v1/nodes/{name}", json=body)).status_code in (200, 201)
    patched = await api.patch("/api/v1/nodes/d3", json={"discoverable": True})
    assert patched.status_code == 200, patched.text
    mac = fresh_mac()
    assert await given(http, mac.upper()) == "d2"
    answer = (await http.get(f"/ipxe/{mac}")).text
    assert f"MAC {mac} was given to node d2" in answer
    assert f"chain {bootd.url}/ipxe/{mac}" in answer
    node = (await api.get("/api/v1/nodes/d2")).json()
    assert node["network_devices"]["default"]["hwaddr"] == mac
    assert node.get("discoverable") is None
    assert "network_devices" not in (await api.get("/api/v1/nodes/d1")).json()
    # The next unknown MAC goes to the next discoverable node; then none is left.
    other = fresh_mac()
    assert await given(http, other) == "d3"
    third = fresh_mac()
    assert "unconfigured" in (await http.get(f"/ipxe/{third}")).text


async def test_unknown_macs_at_once_get_different_nodes(
    api: httpx.AsyncClient, http: httpx.AsyncClient
) -> None:
    racers = [f"r{i}" for i in range(1, 7)]
    # r0 is written last and sorts first: once bootd gives it a MAC, its view has all the
    # others, and every MAC below races for the same first node r1.
    for name in [*reversed(racers), "r0"]:
        put = await api.put(f"/api/v1/nodes/{name}", json={"discoverable": True})
        assert put.status_code == 201, put.text
    assert await given(http, fresh_mac()) == "r0"
    macs = [fresh_mac() for _ in racers]
    answers = await asyncio.gather(*(http.get(f"/ipxe/{mac}") for mac in macs))
    owners = {mac: owner(answer.text, mac) for mac, answer in zip(macs, answers, strict=True)}
    assert sorted(str(name) for name in owners.values()) == racers, owners
    for mac, name in owners.items():
        node = (await api.get(f"/api/v1/nodes/{name}")).json()
        assert node["network_devices"]["default"]["hwaddr"] == mac
        assert node.get("discoverable") is None


async def test_a_node_edited_after_bootd_looked_is_not_given_away(
    api: httpx.AsyncClient, http: httpx.AsyncClient, bus: Bus
) -> None:
    seen = (await api.put("/api/v1/nodes/e1", json={"discoverable": True})).json()
    # An admin takes the node out of discovery after bootd read it: a claim made on what
    # bootd saw (the request bootd sends) is refused, and the admin's edit stands.
    edited = await api.patch("/api/v1/nodes/e1", json={"discoverable": None, "comment": "kept"})
    assert edited.status_code == 200, edited.text
    mac = fresh_mac()
    claim = DiscoveryClaim(node="e1", revision=seen["revision"], mac=mac)
    answer = await ask(bus, msgspec.json.encode(claim))
    assert answer.node is None
    assert answer.refused == "node"
    assert f"revision {edited.json()['revision']}, not {seen['revision']}" in answer.error
    assert (await api.get("/api/v1/nodes/e1")).json() == edited.json()
    # bootd itself, whatever its view, gives that MAC no node.
    assert "unconfigured" in (await http.get(f"/ipxe/{mac}")).text
    assert (await api.get("/api/v1/nodes/e1")).json() == edited.json()


async def test_a_malformed_claim_is_answered_with_the_problem_and_changes_nothing(
    api: httpx.AsyncClient, bus: Bus
) -> None:
    node = (await api.put("/api/v1/nodes/m1", json={"discoverable": True})).json()
    mac = fresh_mac()
    cases = [
        ({"node": "m1", "revision": node["revision"], "mac": "not-a-mac"}, "mac", "MAC"),
        ({"node": "m1", "revision": "one", "mac": mac}, "revision", "Expected `int`"),
        ({"node": "m1", "revision": 0, "mac": mac}, "revision", ">= 1"),
        ({"node": "m1", "mac": mac}, "revision", "missing required field"),
        ({"node": "m1", "revision": node["revision"], "mac": mac, "x": 1}, "x", "unknown field"),
    ]
    for request, field, words in cases:
        answer = await ask(bus, msgspec.json.encode(request))
        assert (answer.node, answer.refused, answer.field) == (None, "request", field), request
        assert words in answer.error, (request, answer.error)
    for payload in (b"", b"{not json"):
        answer = await ask(bus, payload)
        assert answer.refused == "request"
        assert "JSON" in answer.error or "empty" in answer.error
    assert (await api.get("/api/v1/nodes/m1")).json() == node


def test_registry_down_gives_the_unconfigured_script(tmp_path: Path) -> None:
    with start_registry(tmp_path) as registry:
        headers = {"Authorization": f"Bearer {registry.token}"}
        put = httpx.put(
            f"{registry.url}/api/v1/nodes/x1", json={"discoverable": True}, headers=headers
        )
        assert put.status_code == 201, put.text
        stop_process(registry.process)
        # bootd starts with x1 in its view (it serves once it has read KV `nodes`), so an
        # unknown MAC makes it ask the registry, which is not there.
        mac = fresh_mac()
        with start_bootd(registry) as bootd:
            answer = httpx.get(f"{bootd.url}/ipxe/{mac}", timeout=WAIT)
        stored = asyncio.run(stored_node(registry.nats_url, "x1"))
    assert answer.status_code == 200
    assert f"no node has MAC {mac} (unconfigured)" in answer.text
    assert stored.discoverable is True
    assert stored.network_devices == {}


async def stored_node(nats_url: str, name: str) -> Node:
    async with connected_bus(nats_url, "bootd-test") as bus:
        return await (await bus.bucket(names.BUCKET_NODES, Node)).get(name)
