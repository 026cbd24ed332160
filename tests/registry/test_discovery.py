"""The registry's side of discovery, as domain code over real KV buckets (no HTTP, no bootd):
a claim is a compare-and-set patch at the revision bootd saw, followed by the node's event."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
import pytest

from libs.common import names, subjects
from libs.common.bus.connection import Bus
from libs.common.bus.relay import start_relays
from libs.common.errors import Invalid
from libs.common.models.discovery import DiscoveryAnswer, DiscoveryClaim
from libs.common.models.events import ChangeEvent
from libs.common.models.node import NetDev, Node, Profile
from services.registry.discovery import claim
from services.registry.registry import Registry

MAC = "52:54:00:aa:00:01"


@pytest.fixture
async def registry(bus: Bus) -> AsyncIterator[Registry]:
    started = Registry(
        await bus.bucket(names.BUCKET_NODES, Node),
        await bus.bucket(names.BUCKET_PROFILES, Profile),
    )
    # The node bucket's relay publishes the events a claim's write announces.
    relays = await start_relays(bus, {names.BUCKET_NODES: None})
    await started.start()
    try:
        yield started
    finally:
        await started.stop()
        for relay in relays:
            await relay.stop()


async def test_a_claim_gives_the_mac_and_clears_the_flag_then_publishes(
    bus: Bus, registry: Registry
) -> None:
    events = await bus.subscribe(subjects.node("d1", "updated"), ChangeEvent)
    node = await registry.put_node("d1", Node(discoverable=True, primary_network="eth0"))
    # Relayed after the write, so the subscription is made first.
    _, added = await anext(aiter(events))
    assert added.revision == node.revision
    answer = await claim(registry, DiscoveryClaim(node="d1", revision=node.revision, mac=MAC))
    stored = await (await bus.bucket(names.BUCKET_NODES, Node)).get("d1")
    assert answer == DiscoveryAnswer(node="d1", revision=stored.revision)
    assert stored.network_devices == {"eth0": NetDev(hwaddr=MAC)}
    assert stored.discoverable is None
    _, event = await anext(aiter(events))
    await events.stop()
    assert event.revision == stored.revision
    assert event.fields == ["discoverable", "network_devices"]


async def test_a_node_without_primary_network_gets_it_on_default(registry: Registry) -> None:
    node = await registry.put_node("d1", Node(discoverable=True))
    # Any spelling of the MAC is stored in one form.
    asked = MAC.upper().replace(":", "-")
    await claim(registry, DiscoveryClaim(node="d1", revision=node.revision, mac=asked))
    assert registry.nodes.get("d1").network_devices == {"default": NetDev(hwaddr=MAC)}


async def test_a_node_changed_since_bootd_looked_is_refused_and_kept(registry: Registry) -> None:
    seen = await registry.put_node("d1", Node(discoverable=True))
    edited = await registry.patch_node("d1", {"comment": "rack 4"})
    answer = await claim(registry, DiscoveryClaim(node="d1", revision=seen.revision, mac=MAC))
    assert answer.refused == "node"
    assert f"revision {edited.revision}, not {seen.revision}" in answer.error
    assert registry.nodes.get("d1") == edited


@pytest.mark.parametrize(
    ("stored", "words"),
    [(Node(), "not marked discoverable"), (None, "no node named 'd1'")],
)
async def test_a_node_not_discoverable_or_gone_is_refused(
    registry: Registry, stored: Node | None, words: str
) -> None:
    revision = 1
    if stored is not None:
        revision = (await registry.put_node("d1", stored)).revision
    answer = await claim(registry, DiscoveryClaim(node="d1", revision=revision, mac=MAC))
    assert answer == DiscoveryAnswer(refused="node", error=answer.error)
    assert words in answer.error
    assert registry.nodes.items.get("d1") == (
        None if stored is None else msgspec.structs.replace(stored, name="d1", revision=revision)
    )


async def test_a_mac_another_node_has_is_refused_as_the_mac(registry: Registry) -> None:
    await registry.put_node("owner", Node(network_devices={"eth0": NetDev(hwaddr=MAC)}))
    node = await registry.put_node("d1", Node(discoverable=True))
    answer = await claim(
        registry, DiscoveryClaim(node="d1", revision=node.revision, mac=MAC.upper())
    )
    assert answer.refused == "mac"
    assert answer.error == f"MAC {MAC} already belongs to node owner"
    assert registry.nodes.get("d1") == node


async def test_a_malformed_mac_is_invalid_naming_it(registry: Registry) -> None:
    node = await registry.put_node("d1", Node(discoverable=True))
    with pytest.raises(Invalid) as raised:
        await claim(registry, DiscoveryClaim(node="d1", revision=node.revision, mac="nope"))
    assert raised.value.field == "mac"
    assert registry.nodes.get("d1") == node
