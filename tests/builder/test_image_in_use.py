"""Deleting an image that nodes or profiles use is refused (409 naming them), as Warewulf's
`wwctl image delete` refuses it; `?force=true` deletes it anyway. A real builder, the nodes
and profiles written into KV as the registry writes them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from libs.common import names
from libs.common.bus.kv import Bucket
from libs.common.models.node import Node, Profile
from tests.builder.helpers import Builder, Watcher, import_image, read_kv, wolfctl
from tests.stack import connected_bus


@pytest.fixture
async def registry_kv(builder: Builder) -> AsyncIterator[tuple[Bucket[Node], Bucket[Profile]]]:
    async with connected_bus(builder.nats_url, "test-registry") as bus:
        yield (
            await bus.bucket(names.BUCKET_NODES, Node),
            await bus.bucket(names.BUCKET_PROFILES, Profile),
        )


async def test_an_image_in_use_is_not_deleted_unless_forced(
    builder: Builder,
    api: httpx.AsyncClient,
    events: Watcher,
    busybox_tarball: Path,
    registry_kv: tuple[Bucket[Node], Bucket[Profile]],
) -> None:
    nodes, profiles = registry_kv
    built = await import_image(api, events, name="rocky", source=str(busybox_tarball))
    assert built.image_digest
    await profiles.put("compute", Profile(name="compute", image="rocky"))
    await profiles.put("gpu", Profile(name="gpu", profiles=["compute"]))  # inherits it
    await profiles.put("default", Profile(name="default"))
    for n in (1, 2, 3):
        await nodes.put(f"n{n}", Node(name=f"n{n}", profiles=["default", "compute"]))
    await nodes.put("g1", Node(name="g1", profiles=["gpu"]))
    await nodes.put("solo", Node(name="solo", image="rocky"))
    # Its own image wins over the profile's: not a user.
    await nodes.put("n4", Node(name="n4", profiles=["compute"], image="other"))

    r = await api.delete("/images/rocky")
    assert r.status_code == 409, r.text
    body = r.json()
    assert body["field"] == "name"
    assert body["error"].startswith(
        "image 'rocky' is in use by 5 nodes (g1,n[1-3],solo) and 1 profile (compute); "
    )
    assert "?force=true" in body["error"]
    assert await read_kv(builder.nats_url, "rocky") is not None
    assert (builder.data / "images" / "rocky" / "rootfs").is_dir()

    # Pointed elsewhere, one by one: still refused while any user is left.
    await profiles.put("compute", Profile(name="compute"))
    r = await api.delete("/images/rocky")
    assert r.status_code == 409
    assert "in use by 1 node (solo);" in r.json()["error"]
    await nodes.put("solo", Node(name="solo", image="other"))
    assert (await api.delete("/images/rocky")).status_code == 204
    _, deleted = await events.wait("rocky", ("deleted",))
    assert deleted["revision"] > built.revision  # the delete's own

    # Forced: deleted whoever uses it.
    await import_image(api, events, name="other", source=str(busybox_tarball))
    assert (await api.delete("/images/other")).status_code == 409
    assert (await api.delete("/images/other", params={"force": "true"})).status_code == 204
    assert await read_kv(builder.nats_url, "other") is None
    r = await api.delete("/images/other", params={"force": "maybe"})
    assert r.status_code == 400 and r.json()["field"] == "force"


async def test_wolfctl_image_delete_says_who_uses_it_and_forces_on_request(
    builder: Builder,
    api: httpx.AsyncClient,
    events: Watcher,
    busybox_tarball: Path,
    registry_kv: tuple[Bucket[Node], Bucket[Profile]],
) -> None:
    nodes, _ = registry_kv
    await import_image(api, events, name="used", source=str(busybox_tarball))
    await nodes.put("u1", Node(name="u1", image="used"))

    refused = await wolfctl(builder, "image", "delete", "-y", "used")
    assert refused.returncode != 0
    assert "in use by 1 node (u1)" in refused.stderr
    assert await read_kv(builder.nats_url, "used") is not None

    forced = await wolfctl(builder, "image", "delete", "-y", "--force", "used")
    assert forced.returncode == 0, forced.stderr
    assert await read_kv(builder.nats_url, "used") is None
