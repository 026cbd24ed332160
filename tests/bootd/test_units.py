"""The pure parts of bootd: MACs, the index, the script context, access rules, ETags."""

from __future__ import annotations

import msgspec
import pytest

from libs.common.errors import Invalid, Unauthorized
from libs.common.models.image import ImageMeta
from libs.common.models.node import Node
from libs.common.models.overlay import BootManifest
from libs.common.nodes.macs import normalize_mac
from services.bootd.access import Forbidden, check_runtime
from services.bootd.blobs import etag_matches
from services.bootd.index import ManifestIndex
from services.bootd.script import EXTRACT_ABOVE, ScriptRenderer, boot_context

MANIFEST = BootManifest(
    node="n1",
    hwaddrs=["AA-BB-CC-DD-EE-01"],
    kernel_digest="1" * 64,
    image_digest="2" * 64,
    system_digests=["3" * 64],
    runtime_digest="4" * 64,
    kernel_args=["quiet"],
)


@pytest.mark.parametrize("text", ["AA-BB-CC-DD-EE-FF", "aa:bb:cc:dd:ee:ff", " Aa:bB-cc:dd:ee:ff"])
def test_mac_forms(text: str) -> None:
    assert normalize_mac(text) == "aa:bb:cc:dd:ee:ff"


@pytest.mark.parametrize("text", ["", "aa:bb:cc:dd:ee", "zz:bb:cc:dd:ee:ff", "aabbccddeeff"])
def test_bad_macs(text: str) -> None:
    with pytest.raises(Invalid):
        normalize_mac(text)


def test_index_follows_manifest_changes() -> None:
    index = ManifestIndex()
    index.set_manifest("n1", MANIFEST)
    assert index.manifest_for_mac("aa:bb:cc:dd:ee:01") is MANIFEST
    moved = BootManifest(node="n1", hwaddrs=["aa:bb:cc:dd:ee:02"])
    index.set_manifest("n1", moved)
    assert index.manifest_for_mac("aa:bb:cc:dd:ee:01") is None
    assert index.manifest_for_mac("aa:bb:cc:dd:ee:02") is moved
    index.set_manifest("n1", None)
    assert not index.by_mac and not index.by_node


def test_first_discoverable_is_by_name() -> None:
    index = ManifestIndex()
    index.set_node("b", Node(name="b", discoverable=True))
    index.set_node("a", Node(name="a", discoverable=True))
    index.set_node("0", Node(name="0"))
    first = index.first_discoverable()
    assert first is not None and first.name == "a"
    # A node whose claim was refused is skipped for the next one.
    second = index.first_discoverable(skip={"a"})
    assert second is not None and second.name == "b"
    assert index.first_discoverable(skip={"a", "b"}) is None
    index.set_node("a", Node(name="a"))
    first = index.first_discoverable()
    assert first is not None and first.name == "b"


def test_default_template_renders() -> None:
    context = boot_context(MANIFEST, "aa:bb:cc:dd:ee:01", "http://h:1", EXTRACT_ABOVE + 1)
    text = ScriptRenderer().render(context, None)
    assert "imgextract --name image" in text
    assert "initrd=image initrd=system0 ${runtime_initrd} wwid=aa:bb:cc:dd:ee:01 quiet" in text


def test_secure_script_leaves_the_runtime_overlay_to_the_agent() -> None:
    """Found by the first real boot: in secure mode every boot's iPXE fetch of /runtime was
    refused (403, a failed stage in the node's status), as iPXE never binds a port < 1024."""
    mac, base = "aa:bb:cc:dd:ee:01", "http://h:1"
    secure = ScriptRenderer().render(boot_context(MANIFEST, mac, base, None, secure=True), None)
    assert "/runtime/" not in secure
    assert f"initrd=image initrd=system0 wwid={mac} quiet" in secure
    open_mode = ScriptRenderer().render(boot_context(MANIFEST, mac, base, None), None)
    assert f"initrd --name runtime {base}/runtime/{mac} && set runtime_initrd" in open_mode


def test_unknown_template_is_named() -> None:
    context = boot_context(MANIFEST, "aa:bb:cc:dd:ee:01", "http://h:1", None)
    with pytest.raises(Exception, match="no iPXE template 'nope'"):
        ScriptRenderer().render(context, "nope")
    with pytest.raises(Invalid):
        ScriptRenderer().render(context, "../etc/passwd")


def test_runtime_rules() -> None:
    keyed = BootManifest(node="n2", asset_key="k")
    with pytest.raises(Forbidden):
        check_runtime(None, "aa:bb:cc:dd:ee:01", None, 700, True)
    with pytest.raises(Unauthorized):
        check_runtime(keyed, "m", None, 700, True)
    with pytest.raises(Forbidden):
        check_runtime(keyed, "m", "k", 40000, True)
    assert check_runtime(keyed, "m", "k", 40000, False) is keyed
    assert check_runtime(keyed, "m", "k", 700, True) is keyed


def test_etag_matching() -> None:
    assert etag_matches('"a", "b"', '"b"')
    assert etag_matches("*", '"b"')
    assert etag_matches('W/"b"', '"b"')
    assert not etag_matches('"a"', '"b"')
    assert not etag_matches(None, '"b"')


def test_public_digests_follow_manifests_and_images() -> None:
    index = ManifestIndex()
    kernel, image = MANIFEST.kernel_digest or "", MANIFEST.image_digest or ""
    index.set_manifest("n1", MANIFEST)
    index.set_manifest("n2", msgspec.structs.replace(MANIFEST, node="n2", hwaddrs=[]))
    built = ImageMeta(
        name="img",
        source="x",
        image_digest=f"sha256:{image.upper()}",
        kernel_digest="5" * 64,
        kernel_version="6",
        size=1,
        built_at=0.0,
    )
    index.set_image("img", built)
    assert all(index.public(d) for d in (kernel, image, "5" * 64))
    # Overlay archives are never public, whoever's they are.
    assert not index.public(MANIFEST.system_digests[0])
    assert not index.public(MANIFEST.runtime_digest or "")
    index.set_manifest("n1", None)
    assert index.public(kernel)  # n2 still boots it
    index.set_manifest("n2", None)
    assert not index.public(kernel) and index.public(image)  # the image still names it
    index.set_image("img", None)
    assert not index.public(image) and not index.public("5" * 64)
