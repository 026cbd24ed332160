"""Site overlays in KV `overlays` + the store, on a real nats-server: every change a new
revision, stale revisions refused, events after each write, shipped overlays copied on edit."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from libs.common import names, subjects
from libs.common.bus.connection import Bus
from libs.common.bus.relay import start_relays
from libs.common.errors import Conflict, Invalid, NotFound
from libs.common.models.overlay import OverlayEvent, OverlayMeta
from libs.common.store.cas import ContentStore
from services.overlayd.engine.sources import ShippedOverlays
from services.overlayd.site_overlays import OverlayStorage
from tests.overlayd.engine.helpers import Link, write_overlay

WAIT = 5.0


@pytest.fixture
def shipped(tmp_path: Path) -> ShippedOverlays:
    root = tmp_path / "shipped"
    write_overlay(
        root,
        "hosts",
        {"etc/hosts.j2": "{% for n in nodes %}{{ n.name }}\n{% endfor %}", "etc/x": "x\n"},
        meta={"etc/x": {"mode": "0600"}},
    )
    write_overlay(root, "issue", {"etc/issue": "welcome\n"})
    return ShippedOverlays(root)


@pytest.fixture
async def storage(bus: Bus, data_dir: Path, shipped: ShippedOverlays) -> OverlayStorage:
    bucket = await bus.bucket(names.BUCKET_OVERLAYS, OverlayMeta)
    return OverlayStorage(bucket, ContentStore(data_dir / "cas"), shipped)


async def test_create_put_read_and_list(storage: OverlayStorage) -> None:
    created = await storage.create("site1")
    assert created.files == {} and created.revision > 0
    after = await storage.put_file("site1", "/etc/motd.j2", b"hi {{ node.name }}\n", mode="0640")
    assert after.revision > created.revision
    assert set(after.files) == {"etc", "etc/motd.j2"}
    assert after.files["etc"].kind == "dir" and after.files["etc"].mode == 0o755
    assert after.files["etc/motd.j2"].mode == 0o640
    assert await storage.read_file("site1", "etc/motd.j2") == b"hi {{ node.name }}\n"
    listing = {o.name: o for o in await storage.list_overlays()}
    assert (listing["site1"].origin, listing["site1"].shadows) == ("site", False)
    assert (listing["hosts"].origin, listing["hosts"].revision) == ("shipped", None)
    with pytest.raises(Conflict, match="already exists"):
        await storage.create("site1")
    assert await storage.digests() == {after.files["etc/motd.j2"].digest}


async def test_a_stale_revision_is_a_conflict_and_changes_nothing(storage: OverlayStorage) -> None:
    first = await storage.create("o")
    second = await storage.put_file("o", "etc/a", b"a", revision=first.revision)
    with pytest.raises(Conflict, match=f"expected {first.revision}, current {second.revision}"):
        await storage.put_file("o", "etc/b", b"b", revision=first.revision)
    with pytest.raises(Conflict):
        await storage.delete("o", revision=first.revision)
    assert set((await storage.get("o")).files) == {"etc", "etc/a"}


async def test_mkdir_chmod_chown_symlink_and_delete(storage: OverlayStorage) -> None:
    await storage.create("o")
    await storage.mkdir("o", "var/lib/app", mode="0700", uid=1000, gid=1000)
    await storage.put_file("o", "var/lib/app/state", b"1")
    await storage.symlink("o", "etc/alias", "/var/lib/app/state")
    await storage.chmod("o", "var/lib/app/state", 0o600)
    meta = await storage.chown("o", "var/lib/app/state", 1000, 100)
    state = meta.files["var/lib/app/state"]
    assert (state.mode, state.uid, state.gid) == (0o600, 1000, 100)
    assert meta.files["var/lib/app"].mode == 0o700
    assert meta.files["etc/alias"].target == "/var/lib/app/state"
    with pytest.raises(Invalid, match="symlink"):
        await storage.chmod("o", "etc/alias", "0644")
    with pytest.raises(Invalid, match="not empty"):
        await storage.delete_file("o", "var/lib/app")
    with pytest.raises(Invalid, match="is a file"):
        await storage.put_file("o", "var/lib/app/state/inner", b"x")
    with pytest.raises(NotFound):
        await storage.chmod("o", "nope", "0644")
    meta = await storage.delete_file("o", "var/lib", recursive=True)
    assert set(meta.files) == {"var", "etc", "etc/alias"}


@pytest.mark.parametrize("path", ["../etc/passwd", "etc/../../x", "", "/", "a\x00b", "x" * 300])
async def test_bad_paths_are_refused(storage: OverlayStorage, path: str) -> None:
    await storage.create("o")
    with pytest.raises(Invalid):
        await storage.put_file("o", path, b"x")


@pytest.mark.parametrize("name", ["../x", "a/b", "", ".hidden", "x" * 70])
async def test_bad_overlay_names_are_refused(storage: OverlayStorage, name: str) -> None:
    with pytest.raises(Invalid, match="invalid overlay name"):
        await storage.create(name)


async def test_editing_a_shipped_overlay_copies_it_first(storage: OverlayStorage) -> None:
    with pytest.raises(NotFound):
        await storage.get("hosts")
    edited = await storage.put_file("hosts", "etc/extra", b"more\n")
    assert edited.cloned_from == "hosts"
    assert set(edited.files) == {"etc", "etc/hosts.j2", "etc/x", "etc/extra"}
    assert edited.files["etc/x"].mode == 0o600
    assert await storage.read_file("hosts", "etc/x") == b"x\n"
    listing = {o.name: o for o in await storage.list_overlays()}
    assert (listing["hosts"].origin, listing["hosts"].shadows) == ("site", True)
    await storage.delete("hosts")
    listing = {o.name: o for o in await storage.list_overlays()}
    assert listing["hosts"].origin == "shipped"
    empty = await storage.create("issue", clone=False)
    assert empty.files == {}
    with pytest.raises(NotFound, match="no shipped overlay"):
        await storage.create("custom", clone=True)
    with pytest.raises(NotFound, match="does not exist"):
        await storage.put_file("nowhere", "etc/x", b"x")


async def test_import_a_directory_tree(storage: OverlayStorage, tmp_path: Path) -> None:
    source = tmp_path / "src"
    write_overlay(source, "tree", {"bin/tool": "#!/bin/sh\n", "etc/conf": "a=1\n"})
    tree = source / "tree"
    os.chmod(tree / "bin/tool", 0o750)
    os.symlink("../bin/tool", tree / "etc/tool-link")
    await storage.create("site")
    meta = await storage.import_tree("site", tree, dest="opt/app")
    assert meta.files["opt/app/bin/tool"].mode == 0o750
    assert meta.files["opt/app/etc/tool-link"].target == "../bin/tool"
    assert await storage.read_file("site", "opt/app/etc/conf") == b"a=1\n"
    os.mkfifo(tree / "fifo")
    with pytest.raises(Invalid, match="only files, directories and symlinks"):
        await storage.import_tree("site", tree)
    assert stat.S_ISFIFO(os.lstat(tree / "fifo").st_mode)


@pytest.fixture
async def relayed(bus: Bus) -> AsyncIterator[None]:
    """The overlays bucket's relay, as overlayd runs it: it publishes what writes announce."""
    relays = await start_relays(bus, {names.BUCKET_OVERLAYS: None})
    yield
    for relay in relays:
        await relay.stop()


async def test_every_change_is_announced_after_it_is_stored(
    bus: Bus, storage: OverlayStorage, relayed: None
) -> None:
    events = await bus.subscribe(subjects.every("overlay"), OverlayEvent)
    try:
        created = await storage.create("o")
        changed = await storage.put_file("o", "etc/a", b"a")
        copied = await storage.put_file("hosts", "etc/b", b"b")
        await storage.delete("o")
        async with asyncio.timeout(WAIT):
            seen = [await anext(events) for _ in range(4)]
    finally:
        await events.stop()
    assert [subject for subject, _ in seen] == [
        "wolfpack.overlay.o.updated",
        "wolfpack.overlay.o.updated",
        "wolfpack.overlay.hosts.updated",
        "wolfpack.overlay.o.deleted",
    ]
    payloads = [event for _, event in seen]
    assert [e.revision for e in payloads] == [
        created.revision,
        changed.revision,
        copied.revision,
        copied.revision + 1,  # the delete's own
    ]
    assert payloads[1].paths == ["etc/a"]
    assert payloads[3].action == "deleted"


async def test_a_dotted_name_is_one_subject_token(
    bus: Bus, storage: OverlayStorage, relayed: None
) -> None:
    events = await bus.subscribe(subjects.every("overlay", "updated"), OverlayEvent)
    try:
        await storage.create("ssh.keys")
        async with asyncio.timeout(WAIT):
            subject, event = await anext(events)
    finally:
        await events.stop()
    assert subject == "wolfpack.overlay.ssh%2Ekeys.updated"
    assert event.name == "ssh.keys"


async def test_links_in_a_shipped_overlay_are_copied_as_links(
    bus: Bus, data_dir: Path, tmp_path: Path
) -> None:
    root = tmp_path / "with-link"
    write_overlay(root, "l", {"etc/a": "a\n", "etc/b": Link("a")})
    bucket = await bus.bucket(names.BUCKET_OVERLAYS, OverlayMeta)
    storage = OverlayStorage(bucket, ContentStore(data_dir / "cas"), ShippedOverlays(root))
    meta = await storage.create("l")
    assert meta.files["etc/b"].kind == "symlink" and meta.files["etc/b"].target == "a"
