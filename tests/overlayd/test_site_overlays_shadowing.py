"""A site overlay shadows the shipped one of the same name in what nodes get, from the next
render on; deleting it brings the shipped one back."""

from __future__ import annotations

from pathlib import Path

from libs.common import names
from libs.common.bus.connection import Bus
from libs.common.models.overlay import OverlayMeta
from libs.common.store.cas import ContentStore
from services.overlayd.engine import OverlaySources, ShippedOverlays
from services.overlayd.site_overlays import OverlayStorage
from tests.overlayd.engine.helpers import make_renderer, node, rendered, unpack, write_overlay


async def test_a_site_overlay_shadows_the_shipped_one(
    bus: Bus, data_dir: Path, tmp_path: Path
) -> None:
    root = tmp_path / "shipped"
    write_overlay(root, "motd", {"etc/motd.j2": "shipped motd for {{ node.name }}\n"})
    shipped = ShippedOverlays(root)
    store = ContentStore(data_dir / "cas")
    bucket = await bus.bucket(names.BUCKET_OVERLAYS, OverlayMeta)
    storage = OverlayStorage(bucket, store, shipped)
    sources = OverlaySources(shipped, site=storage, store=store)
    renderer = make_renderer(data_dir, root, sources=sources)
    n = node("n1", system=["motd"])

    async def motd(tag: str) -> str:
        done = rendered((await renderer.render_nodes([n], [n], {}))["n1"])
        return (unpack(store, done.system_digests[0], tmp_path / tag) / "etc/motd").read_text()

    assert await motd("shipped") == "shipped motd for n1\n"
    site = await storage.put_file("motd", "etc/motd.j2", b"site motd for {{ node.name }}\n")
    assert await motd("site") == "site motd for n1\n"
    assert (await sources.get("motd")).origin == "site"
    await storage.put_file("motd", "etc/motd.j2", b"edited {{ overlay }}\n", revision=site.revision)
    assert await motd("edited") == "edited motd\n"
    await storage.delete("motd")
    assert await motd("back") == "shipped motd for n1\n"
    # An overlay only the site has is rendered like any other.
    await storage.create("custom")
    await storage.put_file("custom", "etc/custom.j2", b"{{ node.name }} custom\n", mode="0600")
    c = node("c1", system=["custom"])
    done = rendered((await renderer.render_nodes([c], [c], {}))["c1"])
    out = unpack(store, done.system_digests[0], tmp_path / "custom")
    assert (out / "etc/custom").read_text() == "c1 custom\n"
    assert (out / "etc/custom").stat().st_mode & 0o7777 == 0o600
