"""Parsing image sources as `wolfctl image import SOURCE NAME` takes them."""

from __future__ import annotations

import msgspec
import pytest

from libs.common.errors import Invalid
from services.builder.sources.platform import Platform, host_platform, parse_platform
from services.builder.sources.reference import (
    ChrootSource,
    DaemonSource,
    DockerArchiveSource,
    OciArchiveSource,
    OciLayoutSource,
    RegistrySource,
    Source,
    TarballSource,
    parse_source,
)

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("docker://busybox", RegistrySource("docker.io", "library/busybox", "latest")),
        (
            "docker://rockylinux/rockylinux:9",
            RegistrySource("docker.io", "rockylinux/rockylinux", "9"),
        ),
        ("docker://ghcr.io/warewulf/rocky:9.4", RegistrySource("ghcr.io", "warewulf/rocky", "9.4")),
        ("docker://localhost/img", RegistrySource("localhost", "img", "latest")),
        ("docker://127.0.0.1:5000/a/b/c:v1", RegistrySource("127.0.0.1:5000", "a/b/c", "v1")),
        (
            f"docker://reg.example:443/os/rocky@{DIGEST}",
            RegistrySource("reg.example:443", "os/rocky", None, DIGEST),
        ),
        (
            "docker://index.docker.io/library/debian:12",
            RegistrySource("docker.io", "library/debian", "12"),
        ),
        ("oci:/srv/layout", OciLayoutSource("/srv/layout")),
        ("oci:/srv/layout:v2", OciLayoutSource("/srv/layout", "v2")),
        ("oci-archive:/srv/img.tar:v1", OciArchiveSource("/srv/img.tar", "v1")),
        ("docker-archive:/srv/saved.tar", DockerArchiveSource("/srv/saved.tar")),
        ("docker-archive:/srv/saved.tar:rocky:9", DockerArchiveSource("/srv/saved.tar", "rocky:9")),
        ("docker-daemon:rocky:9", DaemonSource("rocky:9")),
        ("/srv/chroots/rocky", ChrootSource("/srv/chroots/rocky")),
        ("./rocky", ChrootSource("./rocky")),
        ("/srv/rootfs.tar", TarballSource("/srv/rootfs.tar")),
        ("/srv/rootfs.tar.gz", TarballSource("/srv/rootfs.tar.gz")),
        ("rootfs.tgz", TarballSource("rootfs.tgz")),
        ("/srv/rootfs.tar.zst", TarballSource("/srv/rootfs.tar.zst")),
        ("/srv/rootfs.tar.xz", TarballSource("/srv/rootfs.tar.xz")),
    ],
)
def test_parse(text: str, parsed: Source) -> None:
    assert parse_source(text) == parsed


def test_registry_text_round_trips_and_keeps_repository() -> None:
    source = parse_source("docker://busybox")
    assert isinstance(source, RegistrySource)
    assert source.text() == "docker://docker.io/library/busybox:latest"
    assert parse_source(source.text()) == source
    assert source.pinned(DIGEST).text() == f"docker://docker.io/library/busybox@{DIGEST}"
    # The push webhook matches by repository: host and repository stay apart.
    assert (source.host, source.repository) == ("docker.io", "library/busybox")


def test_sources_encode_as_a_tagged_union() -> None:
    source = parse_source("oci:/srv/l:v1")
    data = msgspec.json.encode(source)
    assert msgspec.json.decode(data) == {"type": "oci", "path": "/srv/l", "tag": "v1"}
    assert msgspec.json.decode(data, type=Source) == source


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        (" docker://busybox", "space-padded"),
        ("http://example.com/img", "unknown transport"),
        ("docker://Busybox", "bad repository"),
        ("docker://busybox:bad tag", "bad tag"),
        ("docker://busybox@sha256:123", "bad digest"),
        (f"docker://busybox:1@{DIGEST}", "both a tag and a digest"),
        ("docker://-bad-.host/x", "bad registry host"),
        ("oci:", "needs a path"),
        ("oci:/srv/l:bad/tag", "bad tag"),
        ("docker-daemon:", "needs an image name"),
        ("/srv/image.cpio.gz", "not a rootfs tarball"),
        ("/srv/a\x00b", "NUL"),
    ],
)
def test_invalid(text: str, message: str) -> None:
    with pytest.raises(Invalid, match=message) as caught:
        parse_source(text)
    assert caught.value.field == "source"


def test_platforms() -> None:
    assert parse_platform("linux/arm64") == Platform("linux", "arm64")
    assert parse_platform("linux/x86_64") == Platform("linux", "amd64")
    assert parse_platform("linux/armv7l") == Platform("linux", "arm")
    # This machine's platform is already spelled as OCI spells it.
    assert str(parse_platform(host_platform())) == host_platform()
    assert str(parse_platform("linux/arm/v7")) == "linux/arm/v7"
    assert parse_platform("linux/arm64/v8").matches("linux", "arm64", None)
    assert not parse_platform("linux/arm/v7").matches("linux", "arm", "v6")
    assert not parse_platform("linux/amd64").matches("linux", "arm64", None)
    with pytest.raises(Invalid, match="want OS/ARCH"):
        parse_platform("amd64")
