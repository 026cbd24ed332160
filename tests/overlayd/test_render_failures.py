"""A template that fails for one node: `render_failed` names the overlay, the template and the
line; that node keeps its last good manifest and every other node goes on. Fixing the template
heals it. An overlay that does not exist fails its users the same way."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.overlayd.helpers import (
    Stack,
    following_boot,
    node_events,
    revisions,
    settled,
    start_stack,
    status,
)

GOOD = b"# site\n{{ node.name }}\n"
FIXED = b"# site, fixed\n{{ node.name }}\n"
# Line 3 reads a field only e02 lacks: StrictUndefined fails it there, for e02 only.
BROKEN = b"# site\n{{ node.name }}\n{{ node.tags.rack if node.name != 'e02' else node.nope }}\n"
DEVICE = {"device": "eth0", "netmask": "255.255.0.0"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with start_stack(tmp_path_factory.mktemp("failures")) as running:
        yield running


async def test_a_broken_template_fails_one_node_and_keeps_its_manifest(stack: Stack) -> None:
    async with stack.overlayd_api() as api:
        r = await api.post("/overlays", json={"name": "rack", "empty": True})
        assert r.status_code == 201, r.text
        r = await api.put("/overlays/rack/files/etc/rack.j2", content=GOOD)
        assert r.status_code == 200, r.text
    async with stack.registry_api() as registry:
        body = {
            "names": "e[01-03]",
            "ipaddr": "10.9.0.1",
            "network_devices": {"default": DEVICE},
            "system_overlay": ["rack"],
            "tags": {"rack": "r1"},
        }
        assert (await registry.post("/nodes:bulk", json=body)).status_code == 201
    async with following_boot(stack.nats_url) as boot:
        await boot.until(lambda found: {"e01", "e02", "e03"} <= set(found))
    await settled(stack)
    before = await revisions(stack)

    async with node_events(stack.nats_url) as events, following_boot(stack.nats_url) as boot:
        old = {n: boot.manifests[n].system_digests[-1] for n in ("e01", "e03")}
        async with stack.overlayd_api() as api:
            r = await api.put("/overlays/rack/files/etc/rack.j2", content=BROKEN)
            assert r.status_code == 200, r.text
        failure = await events.failure("e02")
        assert failure.overlay == "rack"
        assert failure.template == "etc/rack.j2"
        assert failure.line == 3
        assert "nope" in failure.message
        await boot.until(
            lambda found: all(found[n].system_digests[-1] != old[n] for n in ("e01", "e03"))
        )
    found = await settled(stack)
    assert found["failing"] == 1
    after = await revisions(stack)
    assert after["e02"] == before["e02"]  # the last good manifest stays
    assert after["e01"] != before["e01"] and after["e03"] != before["e03"]
    assert [e.node for e in events.failed] == ["e02"]

    async with stack.overlayd_api() as api:
        r = await api.post("/overlays:build", params={"nodes": "e[01-03]"})
        assert r.status_code == 200, r.text
        report = r.json()
        assert report["failed"] == 1
        assert report["failures"][0]["node"] == "e02"
        assert report["failures"][0]["line"] == 3
        r = await api.get("/overlays/rack", params={"render": "e02"})
        assert r.status_code == 400
        assert "etc/rack.j2:3" in r.json()["error"]

    async with following_boot(stack.nats_url) as boot, stack.overlayd_api() as api:
        r = await api.put("/overlays/rack/files/etc/rack.j2", content=FIXED)
        assert r.status_code == 200, r.text
        await boot.until(lambda found: found["e02"].revision != before["e02"])
        r = await api.get("/overlays/rack/files/etc/rack", params={"render": "e02"})
        assert r.content == b"# site, fixed\ne02\n"
    assert (await settled(stack))["failing"] == 0


async def test_a_missing_overlay_fails_its_users(stack: Stack) -> None:
    async with node_events(stack.nats_url) as events, stack.registry_api() as registry:
        r = await registry.put(
            "/nodes/m01",
            json={"profiles": ["default"], "system_overlay": ["no-such-overlay"]},
        )
        assert r.status_code == 201, r.text
        failure = await events.failure("m01")
    assert failure.overlay == "no-such-overlay"
    assert failure.template is None
    await settled(stack)
    async with stack.overlayd_api() as api:
        assert (await api.get("/nodes/m01/manifest")).status_code == 404
    assert (await status(stack))["failing"] >= 1
