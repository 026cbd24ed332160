"""Who gets which blob at `/blobs/sha256/<digest>`, an allow-list: the kernels and images a
current manifest or KV `images` names go to anyone; a system overlay archive only to its own
node, asking as it (`?wwid=`, its asset key), and only while its current manifest lists it.
Anything else (an archive from before a re-render, a deleted node's, a blob nobody boots) gets
the answer a digest never stored gets, whoever asks and whatever key they hold."""

from __future__ import annotations

import hashlib
import os

import httpx
import msgspec

from libs.common import names
from libs.common.bus.connection import Bus
from libs.common.models.image import ImageMeta
from libs.common.models.overlay import BootManifest
from tests.bootd.conftest import Bootd, answered, boot_node, fresh_mac


async def until_script_names(
    http: httpx.AsyncClient, mac: str, key: str | None, wanted: str | None
) -> None:
    """Wait until the script of `mac` names `wanted` (None: boots nothing)."""
    await answered(
        http,
        f"/ipxe/{mac}",
        lambda answer: (
            (wanted in answer.text) if wanted is not None else "kernel --name" not in answer.text
        ),
        f"bootd's script for {mac} naming {wanted}",
        params={"assetkey": key} if key else {},
    )


class Refusals:
    """What bootd says about a digest it never stored: every refusal must look the same."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.never = hashlib.sha256(os.urandom(32)).hexdigest()

    async def assert_refused(self, digest: str, params: dict[str, str], secret: bytes) -> None:
        url = f"/blobs/sha256/{digest}"
        want = await self.http.get(f"/blobs/sha256/{self.never}", params=params)
        for answer in (
            await self.http.get(url, params=params),
            await self.http.get(url, params=params, headers={"Range": "bytes=0-"}),
            await self.http.get(url, params=params, headers={"If-None-Match": f'"{digest}"'}),
        ):
            assert answer.status_code == 404, (digest, params, answer.status_code)
            assert secret not in answer.content
            body = answer.json()
            assert body["error"].replace(digest, "D") == want.json()["error"].replace(
                self.never, "D"
            )
            assert body["field"] == want.json()["field"]
        head = await self.http.head(url, params=params)
        assert head.status_code == 404 and head.content == b""


async def test_archives_from_before_a_rerender_and_of_a_deleted_node_are_not_served(
    bootd: Bootd, bus: Bus, http: httpx.AsyncClient
) -> None:
    mac_a, mac_b = fresh_mac(), fresh_mac()
    a = await boot_node(bus, bootd.store, "ba1", mac_a, asset_key="ka")
    b = await boot_node(bus, bootd.store, "ba2", mac_b, asset_key="kb")
    await until_script_names(http, mac_a, "ka", a.manifest.system_digests[1])
    await until_script_names(http, mac_b, "kb", b.manifest.system_digests[1])
    old = a.manifest
    # Node a is rendered again: new system and runtime archives (its old ones hold its
    # config and host keys, as they were), the same kernel and image.
    new_system = b"wwinit of ba1, rendered again"
    boot = await bus.bucket(names.BUCKET_BOOT, BootManifest)
    rendered = msgspec.structs.replace(
        old,
        system_digests=[await bootd.store.put_bytes(new_system)],
        runtime_digest=await bootd.store.put_bytes(b"runtime of ba1, rendered again"),
    )
    await boot.put("ba1", rendered)
    await until_script_names(http, mac_a, "ka", rendered.system_digests[0])
    refusals = Refusals(http)
    askers = [
        {},
        {"wwid": mac_b, "assetkey": "kb"},  # another node, with its own key
        {"wwid": mac_a},
        {"wwid": mac_a, "assetkey": "ka"},  # even node a itself: no longer its archive
    ]
    olds = [(d, s) for d, s in zip(old.system_digests, a.systems, strict=True)]
    for digest, secret in [*olds, (old.runtime_digest or "", a.runtime)]:
        for params in askers:
            await refusals.assert_refused(digest, params, secret)
    # The current archive goes to its node, and the kernel and image to anyone.
    r = await http.get(f"/blobs/sha256/{rendered.system_digests[0]}", params=askers[3])
    assert r.status_code == 200 and r.content == new_system
    assert (await http.get(f"/blobs/sha256/{old.kernel_digest}")).content == a.kernel
    assert (await http.get(f"/blobs/sha256/{old.image_digest}")).content == a.image

    # Node b is deleted: nothing of it is served any more, to anyone.
    await boot.delete("ba2")
    await until_script_names(http, mac_b, "kb", None)
    for digest, secret in zip(b.manifest.system_digests, b.systems, strict=True):
        for params in ({}, {"wwid": mac_b, "assetkey": "kb"}, {"wwid": mac_a, "assetkey": "ka"}):
            await refusals.assert_refused(digest, params, secret)
    # Its kernel was its own (no manifest or image names it now): not served either.
    await refusals.assert_refused(b.manifest.kernel_digest or "", {}, b.kernel)


async def test_current_archives_go_to_their_own_node_only(
    bootd: Bootd, bus: Bus, http: httpx.AsyncClient
) -> None:
    mac_a, mac_b = fresh_mac(), fresh_mac()
    a = await boot_node(bus, bootd.store, "ba3", mac_a, asset_key="a4")
    b = await boot_node(bus, bootd.store, "ba4", mac_b, asset_key="b4")
    await until_script_names(http, mac_a, "a4", a.manifest.system_digests[0])
    await until_script_names(http, mac_b, "b4", b.manifest.system_digests[0])
    refusals = Refusals(http)
    runtime_b, own_b = b.manifest.runtime_digest or "", b.manifest.system_digests[0]
    # To anyone not asking as node b, b's archives do not exist.
    for digest, secret in ((runtime_b, b.runtime), (own_b, b.systems[0])):
        for params in ({}, {"wwid": mac_a, "assetkey": "a4"}):
            await refusals.assert_refused(digest, params, secret)
    # Asking as node b: its asset key decides, as on every node route.
    for params, status in [
        ({"wwid": mac_b}, 401),
        ({"wwid": mac_b, "assetkey": "a4"}, 403),  # b's MAC, a's key
        ({"wwid": mac_b, "assetkey": "wrong"}, 401),
    ]:
        r = await http.get(f"/blobs/sha256/{own_b}", params=params)
        assert r.status_code == status and b.systems[0] not in r.content, (params, r.text)
    r = await http.get(f"/blobs/sha256/{own_b}", params={"wwid": mac_b, "assetkey": "b4"})
    assert r.status_code == 200 and r.content == b.systems[0]
    # The runtime archive goes out at /runtime only, even to its own node.
    r = await http.get(f"/blobs/sha256/{runtime_b}", params={"wwid": mac_b, "assetkey": "b4"})
    assert r.status_code == 403 and "/runtime/" in r.json()["error"]
    assert b.runtime not in r.content
    # Kernels and images carry no node's secrets: anyone may have them.
    r = await http.get(f"/blobs/sha256/{a.manifest.image_digest}")
    assert r.status_code == 200 and r.content == a.image
    # The script names the blobs so that the node's own asset tag goes with them.
    script = (await http.get(f"/ipxe/{mac_b}", params={"assetkey": "b4"})).text
    assert f"/blobs/sha256/{own_b}?wwid={mac_b}&assetkey=${{asset}}" in script


async def test_an_images_kernel_and_image_are_public_while_it_is_there(
    bootd: Bootd, bus: Bus, http: httpx.AsyncClient
) -> None:
    """Built but booted by no node yet (KV `images`): nodes need them before they have a key."""
    kernel, image = os.urandom(1000), os.urandom(3000)
    digests = [await bootd.store.put_bytes(kernel), await bootd.store.put_bytes(image)]
    refusals = Refusals(http)
    for digest, data in zip(digests, (kernel, image), strict=True):
        await refusals.assert_refused(digest, {}, data)
    images = await bus.bucket(names.BUCKET_IMAGES, ImageMeta)
    record = ImageMeta(
        name="ba-built",
        source="tests/bootd",
        kernel_digest=digests[0],
        image_digest=digests[1],
        kernel_version="test",
        size=len(image),
        built_at=0.0,
    )
    await images.put(record.name, record)
    for digest, data in zip(digests, (kernel, image), strict=True):
        await until(http, digest, 304)
        assert (await http.get(f"/blobs/sha256/{digest}")).content == data
    await images.delete(record.name)
    for digest, data in zip(digests, (kernel, image), strict=True):
        await until(http, digest, 404)
        await refusals.assert_refused(digest, {}, data)


async def until(http: httpx.AsyncClient, digest: str, status: int) -> None:
    """Wait until a GET of `digest` with its ETag gets `status` (304: served, 404: refused)."""
    await answered(
        http,
        f"/blobs/sha256/{digest}",
        lambda answer: answer.status_code == status,
        f"blob {digest} answered {status}",
        headers={"If-None-Match": f'"{digest}"'},
    )
