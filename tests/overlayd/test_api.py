"""The overlayd HTTP API on a real process: overlays listed, created, edited (files, dirs,
modes), imported from a tar archive, rendered for a node, deleted; builds, manifests, status;
bad input, stale revisions and missing tokens answered with a clear error."""

from __future__ import annotations

import io
import tarfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import msgspec
import pytest

from libs.common import subjects
from libs.common.models.overlay import OverlayEvent
from libs.common.nodes.defaults import default_profile
from tests.overlayd.helpers import API, Stack, following_boot, settled, start_stack
from tests.stack import nats_client


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with start_stack(tmp_path_factory.mktemp("api")) as running:
        yield running


@pytest.fixture
async def api(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with stack.overlayd_api() as client:
        yield client


def tar_of(entries: list[tuple[str, bytes | None, int]]) -> bytes:
    """A tar archive of (path, content or None for a directory, mode)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path, data, mode in entries:
            info = tarfile.TarInfo(path)
            info.mode = mode
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


async def test_the_shipped_overlays_are_listed(api: httpx.AsyncClient) -> None:
    r = await api.get("/overlays")
    assert r.status_code == 200, r.text
    listed = {o["name"]: o for o in r.json()}
    for name in default_profile().system_overlay + default_profile().runtime_overlay:
        assert listed[name]["origin"] == "shipped", name
    r = await api.get("/overlays", params={"files": "true"})
    wwinit = next(o for o in r.json() if o["name"] == "wwinit")
    assert wwinit["files"]["init"]["mode"] & 0o111


async def test_a_site_overlay_is_created_edited_and_deleted(
    stack: Stack, api: httpx.AsyncClient
) -> None:
    async with nats_client(stack.nats_url) as nc:
        events = await nc.subscribe(subjects.every("overlay", "updated"))
        await nc.flush()  # the server has the subscription before the first event can go out
        r = await api.post("/overlays", json={"name": "site", "empty": True})
        assert r.status_code == 201, r.text
        assert (await api.post("/overlays", json={"name": "site"})).status_code == 409
        r = await api.put(
            "/overlays/site/files/etc/motd.j2", content=b"hi {{ node.name }}\n",
            params={"mode": "0600"},
        )  # fmt: skip
        assert r.status_code == 200, r.text
        revision = r.json()["revision"]
        assert r.headers["ETag"] == f'"{revision}"'
        event = msgspec.json.decode((await events.next_msg(timeout=10)).data, type=OverlayEvent)
        assert event.name == "site"
        msg = await events.next_msg(timeout=10)
        event = msgspec.json.decode(msg.data, type=OverlayEvent)
        assert event.revision == revision and event.paths == ["etc/motd.j2"]

    r = await api.get("/overlays/site/files/etc/motd.j2")
    assert r.content == b"hi {{ node.name }}\n"
    assert r.headers["ETag"] == f'"{revision}"'
    r = await api.put("/overlays/site/files/etc/motd.j2", content=b"x", headers={"If-Match": '"1"'})
    assert r.status_code == 409, r.text
    assert (
        await api.post("/overlays/site/mkdir", json={"path": "var/empty", "mode": "0700"})
    ).is_success
    r = await api.post("/overlays/site/chmod", json={"path": "etc/motd.j2", "mode": "0644"})
    assert r.status_code == 200, r.text
    r = await api.post("/overlays/site/chmod", json={"path": "etc/motd.j2", "mode": "rw"})
    assert r.status_code == 400 and r.json()["field"] == "mode"
    files = (await api.get("/overlays/site")).json()["files"]
    assert files["etc/motd.j2"]["mode"] == 0o644
    assert files["var/empty"] == {"kind": "dir", "mode": 0o700}
    r = await api.put("/overlays/site/files/../escape", content=b"x")
    assert r.status_code in (400, 404)
    r = await api.put("/overlays/site/files/a/..%2F..%2Fescape", content=b"x")
    assert r.status_code == 400, r.text

    r = await api.delete("/overlays/site/files/etc/motd.j2")
    assert r.status_code == 200 and "etc/motd.j2" not in r.json()["files"]
    assert (await api.delete("/overlays/site")).status_code == 204
    assert (await api.get("/overlays/site")).status_code == 404


async def test_editing_a_shipped_overlay_makes_a_site_copy(api: httpx.AsyncClient) -> None:
    shipped = (await api.get("/overlays/issue")).json()
    assert shipped["origin"] == "shipped"
    r = await api.put("/overlays/issue/files/etc/extra", content=b"extra\n")
    assert r.status_code == 200, r.text
    copy = (await api.get("/overlays/issue")).json()
    assert copy["origin"] == "site" and copy["shadows"] is True
    assert set(shipped["files"]) | {"etc/extra"} == set(copy["files"])
    assert (await api.delete("/overlays/issue")).status_code == 204
    assert (await api.get("/overlays/issue")).json()["origin"] == "shipped"


async def test_an_import_keeps_modes_and_refuses_escapes(
    api: httpx.AsyncClient, tmp_path: Path
) -> None:
    assert (await api.post("/overlays", json={"name": "imported", "empty": True})).is_success
    archive = tar_of(
        [
            ("usr", None, 0o755),
            ("usr/local/bin/hello", b"#!/bin/sh\necho hi\n", 0o755),
            ("etc/secret", b"s3cret\n", 0o600),
        ]
    )
    r = await api.post("/overlays/imported/import", content=archive, params={"dest": "opt"})
    assert r.status_code == 200, r.text
    files = r.json()["files"]
    assert files["opt/usr/local/bin/hello"]["mode"] == 0o755
    assert files["opt/etc/secret"]["mode"] == 0o600
    revision = r.json()["revision"]
    evil = tar_of([("../evil", b"x", 0o644)])
    r = await api.post("/overlays/imported/import", content=evil)
    assert r.status_code == 400 and "evil" in r.json()["error"]
    # A link may point anywhere (it is resolved on the node), but nothing goes through it here.
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        link = tarfile.TarInfo("up")
        link.type, link.linkname = tarfile.SYMTYPE, str(tmp_path)
        tar.addfile(link)
        through = tarfile.TarInfo("up/evil")
        through.size = 1
        tar.addfile(through, io.BytesIO(b"x"))
    r = await api.post("/overlays/imported/import", content=buffer.getvalue())
    assert r.status_code == 400, r.text
    assert not (tmp_path / "evil").exists()
    r = await api.post("/overlays/imported/import", content=b"not a tar")
    assert r.status_code == 400
    assert (await api.get("/overlays/imported")).json()["revision"] == revision


async def test_an_overlay_renders_for_a_node(stack: Stack, api: httpx.AsyncClient) -> None:
    async with stack.registry_api() as registry:
        r = await registry.put(
            "/nodes/w01",
            json={
                "profiles": ["default"],
                "network_devices": {"default": {"ipaddr": "10.0.3.1", "netmask": "255.255.0.0"}},
            },
        )
        assert r.status_code == 201, r.text
    async with following_boot(stack.nats_url) as boot:
        await boot.manifest("w01")
    r = await api.get("/overlays/hostname", params={"render": "w01"})
    assert r.status_code == 200, r.text
    by_path = {f["path"]: f for f in r.json()}
    assert "etc/hostname" in by_path
    r = await api.get("/overlays/hostname/files/etc/hostname", params={"render": "w01"})
    assert r.content.strip() == b"w01"
    r = await api.get("/overlays/hostname", params={"render": "nobody"})
    assert r.status_code == 404 and r.json()["field"] == "render"
    assert (await api.get("/overlays/nothing", params={"render": "w01"})).status_code == 404

    r = await api.get("/nodes/w01/manifest")
    assert r.status_code == 200, r.text
    assert r.json()["node"] == "w01"
    # What every node shares, then the node's own files.
    assert len(r.json()["system_digests"]) == 2
    assert (await api.get("/nodes/nobody/manifest")).status_code == 404


async def test_build_and_status(stack: Stack, api: httpx.AsyncClient) -> None:
    async with stack.registry_api() as registry:
        body = {"names": "bx[1-3]", "ipaddr": "10.0.4.1"}
        assert (await registry.post("/nodes:bulk", json=body)).status_code == 201
    await settled(stack)
    r = await api.post("/overlays:build", params={"nodes": "bx[1-3]"})
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["reason"] == "build"
    assert report["nodes_rendered"] == 3 and report["manifests_written"] == 0
    r = await api.post("/overlays:build")
    assert r.status_code == 200 and r.json()["nodes_rendered"] >= 3
    r = await api.post("/overlays:build", params={"nodes": "bx[1-4]"})
    assert r.status_code == 404 and "bx4" in r.json()["error"]
    r = await api.post("/overlays:build", params={"nodes": "bx[1-"})
    assert r.status_code == 400 and r.json()["field"] == "nodes"
    found = (await api.get("/status")).json()
    assert found["reconciled"] is True and found["manifests"] >= 3
    assert found["last"]["reason"] in ("build", "followup", "events")


async def test_the_token_is_required(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.overlayd_url + API, timeout=30) as bare:
        assert (await bare.get("/overlays")).status_code == 401
        assert (await bare.post("/overlays", json={"name": "x"})).status_code == 401
        assert (await bare.post("/overlays:build")).status_code == 401
        r = await bare.get("/overlays", headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401
