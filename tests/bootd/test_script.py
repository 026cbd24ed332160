"""`/ipxe/{mac}`: the node's script from its manifest, served from memory at once."""

from __future__ import annotations

import httpx
import msgspec

from libs.common import names
from libs.common.bus.connection import Bus
from libs.common.models.overlay import BootManifest
from tests.bootd.conftest import Bootd, answered, boot_node, fresh_mac, script_booting


async def next_script(http: httpx.AsyncClient, path: str, differs_from: str) -> str:
    """The first answer that differs from `differs_from` (a watcher may take a moment)."""
    answer = await answered(
        http, path, lambda answer: answer.text != differs_from, f"{path} answering a new script"
    )
    return answer.text


async def test_script_names_blobs_initrds_and_kernel_args(
    bootd: Bootd, bus: Bus, http: httpx.AsyncClient
) -> None:
    mac = fresh_mac()
    files = await boot_node(bus, bootd.store, "script1", mac)
    m = files.manifest
    asked = mac.upper().replace(":", "-")
    text = await script_booting(http, asked)
    assert text.startswith("#!ipxe\n")
    base = bootd.url
    assert f"kernel --name kernel {base}/blobs/sha256/{m.kernel_digest}?wwid={mac}" in text
    assert f"initrd --name image {base}/blobs/sha256/{m.image_digest}?wwid={mac}" in text
    for i, digest in enumerate(m.system_digests):
        assert f"initrd --name system{i} {base}/blobs/sha256/{digest}?wwid={mac}" in text
    # Secure mode (bootd's default): iPXE never fetches from a privileged port, so the script
    # leaves the runtime overlay to the node agent rather than make a fetch bound to fail.
    assert "/runtime/" not in text and "runtime_initrd" not in text
    boot_line = next(line for line in text.splitlines() if line.startswith("boot "))
    assert boot_line.startswith("boot kernel initrd=image initrd=system0 initrd=system1 ")
    assert f"wwid={mac} quiet crashkernel=no" in boot_line
    assert "imgextract" not in text  # a small image goes through initrd


async def test_script_uses_the_host_the_node_asked(
    bootd: Bootd, bus: Bus, http: httpx.AsyncClient
) -> None:
    mac = fresh_mac()
    await boot_node(bus, bootd.store, "script2", mac)
    answer = await answered(
        http,
        f"/ipxe/{mac}",
        lambda answer: "kernel --name" in answer.text,
        f"bootd's script booting {mac}",
        headers={"Host": "10.9.8.7:9873"},
    )
    assert "http://10.9.8.7:9873/blobs/sha256/" in answer.text


async def test_manifest_change_is_served_at_once(
    bootd: Bootd, bus: Bus, http: httpx.AsyncClient
) -> None:
    mac = fresh_mac()
    await boot_node(bus, bootd.store, "script3", mac)
    first = await script_booting(http, mac)
    await boot_node(bus, bootd.store, "script3", mac, kernel_args=["console=ttyS0"])
    second = await next_script(http, f"/ipxe/{mac}", first)
    assert "console=ttyS0" in second and "quiet" not in second


async def test_unknown_mac_gets_unconfigured_script(http: httpx.AsyncClient, bootd: Bootd) -> None:
    mac = fresh_mac()
    answer = await http.get(f"/ipxe/{mac.replace(':', '-')}")
    assert answer.status_code == 200
    assert "unconfigured" in answer.text and mac in answer.text
    assert "sleep 30" in answer.text
    assert f"chain {bootd.url}/ipxe/{mac}" in answer.text


async def test_bad_mac_is_400(http: httpx.AsyncClient) -> None:
    answer = await http.get("/ipxe/not-a-mac")
    assert answer.status_code == 400
    assert "not a MAC address" in answer.json()["error"]


async def test_asset_key_guards_the_script(bootd: Bootd, bus: Bus, http: httpx.AsyncClient) -> None:
    mac = fresh_mac()
    await boot_node(bus, bootd.store, "script4", mac, asset_key="tag-42")
    answer = await answered(
        http,
        f"/ipxe/{mac}",
        lambda answer: answer.status_code == 401,
        f"bootd asking {mac} for its asset key",
    )
    assert "asset key" in answer.json()["error"]
    assert (await http.get(f"/ipxe/{mac}?assetkey=wrong")).status_code == 401
    good = await http.get(f"/ipxe/{mac}?assetkey=tag-42")
    assert good.status_code == 200 and "tag-42" not in good.text
    # The script asks iPXE for the machine's asset tag where it names a node route again.
    assert f"/ipxe/{mac}?assetkey=${{asset}}" in good.text


async def test_big_image_uses_imgextract_with_fallback(
    bootd: Bootd, bus: Bus, http: httpx.AsyncClient
) -> None:
    mac = fresh_mac()
    files = await boot_node(bus, bootd.store, "script5", mac)
    # A sparse file over the limit, stored under its (claimed) digest: only its size matters.
    from services.bootd.script import EXTRACT_ABOVE

    digest = "ab" * 32
    path = bootd.store.path(digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        out.truncate(EXTRACT_ABOVE + 1)
    bucket = await bus.bucket(names.BUCKET_BOOT, BootManifest)
    await bucket.put("script5", msgspec.structs.replace(files.manifest, image_digest=digest))
    answer = await answered(
        http, f"/ipxe/{mac}", lambda answer: "imgextract" in answer.text, "a script with imgextract"
    )
    text = answer.text
    url = f"{bootd.url}/blobs/sha256/{digest}?wwid={mac}"
    assert (
        f"iseq ${{platform}} efi && imgextract --name image {url} || initrd --name image {url}"
        in text
    )
    path.unlink()
