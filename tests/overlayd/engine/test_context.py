"""What templates see: node, nodes, settings, image, keys, authorized_keys, overlay, build
time; and the filters."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from libs.common.models.node import IPMI, NetDev
from libs.common.models.site import NfsExport, TemplateSettings
from services.overlayd.engine.template import ipv4_network, netmask_of, prefixlen
from tests.overlayd.engine.helpers import KEYS, failed, make_renderer, node, write_overlay


class ImageMeta(msgspec.Struct, kw_only=True):
    """KV `images` values as the renderer gets them: any Struct (or a dict)."""

    name: str
    image_digest: str
    kernel_version: str
    revision: int = 0


DUMP = (
    "{{ {'node': node, 'names': nodes | map(attribute='name') | list, 'settings': settings,"
    " 'image': image, 'overlay': overlay, 'build_time': build_time,"
    " 'rsa': keys.rsa.public, 'authorized': authorized_keys} | tojson }}"
)


async def test_the_context_holds_what_the_design_says(data_dir: Path, tmp_path: Path) -> None:
    overlays = tmp_path / "overlays"
    write_overlay(overlays, "dump", {"ctx.j2": DUMP})
    ssh = tmp_path / "ssh"
    ssh.mkdir()
    (ssh / "authorized_keys").write_text("ssh-ed25519 AAAA admin\n")
    settings = TemplateSettings(
        ip="10.0.0.1",
        netmask="255.255.0.0",
        network="10.0.0.0",
        dhcp_range=["10.0.9.1", "10.0.9.200"],
        nfs_exports=[NfsExport(path="/home")],
        update_interval=30,
    )
    renderer = make_renderer(data_dir, overlays, settings=settings, ssh_dir=ssh)
    me = node(
        "n2",
        system=["dump"],
        image="rocky",
        network_devices={
            "ib": NetDev(device="ib0", ipaddr="10.1.0.2"),
            "default": NetDev(device="eth0", ipaddr="10.0.0.2", hwaddr="aa:bb:cc:dd:ee:ff"),
        },
        ipmi=IPMI(ipaddr="10.3.0.2"),
        tags={"rack": "4"},
    )
    others = [node("n3", system=["dump"]), node("n1", system=["dump"])]
    image = ImageMeta(name="rocky", image_digest="a" * 64, kernel_version="5.14.0", revision=7)
    members = await renderer.render_files(
        me, "dump", [me, *others], {"rocky": image}, build_time="2026-01-02T03:04:05Z"
    )
    seen = json.loads(members[0].data)
    assert seen["node"]["name"] == "n2"
    assert seen["node"]["image"] == "rocky"
    assert list(seen["node"]["network_devices"]) == ["default", "ib"]  # in name order
    assert seen["node"]["network_devices"]["default"]["hwaddr"] == "aa:bb:cc:dd:ee:ff"
    assert seen["node"]["ipmi"] == {"ipaddr": "10.3.0.2"}
    assert "comment" not in seen["node"]  # unset: absent, as msgspec.to_builtins gives it
    assert "revision" not in seen["node"]
    assert seen["names"] == ["n1", "n2", "n3"]
    assert seen["settings"] == msgspec.to_builtins(settings)
    assert seen["settings"]["ports"]["bootd"] == 9873
    assert seen["image"]["image_digest"] == "a" * 64
    assert "revision" not in seen["image"]
    assert seen["overlay"] == "dump"
    assert seen["build_time"] == "2026-01-02T03:04:05Z"
    assert seen["rsa"] == KEYS.keys["rsa"].public
    assert seen["authorized"] == ["ssh-ed25519 AAAA admin"]


async def test_a_node_without_image_metadata_sees_none(data_dir: Path, tmp_path: Path) -> None:
    overlays = tmp_path / "overlays"
    write_overlay(overlays, "img", {"x.j2": "{{ image is none }} {{ image.name }}"})
    renderer = make_renderer(data_dir, overlays)
    n = node("n1", system=["img"], image="not-built")
    error = failed((await renderer.render_nodes([n], [n], {}))["n1"])
    assert "'None' has no attribute 'name'" in error.message


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda: ipv4_network("10.0.3.7", "255.255.0.0"), "10.0.0.0"),
        (lambda: ipv4_network("10.0.3.7/22"), "10.0.0.0"),
        (lambda: prefixlen("255.255.252.0"), 22),
        (lambda: netmask_of(22), "255.255.252.0"),
        (lambda: netmask_of("16"), "255.255.0.0"),
    ],
)
def test_network_filters(call: Callable[[], object], expected: object) -> None:
    assert call() == expected


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: prefixlen("255.0.255.0"), "not an IPv4 netmask"),
        (lambda: netmask_of(33), "not a prefix length"),
        (lambda: ipv4_network("fe80::1", "64"), "not an IPv4 address"),
    ],
)
def test_network_filters_name_bad_input(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
