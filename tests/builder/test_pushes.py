"""Which images a registry notification concerns: host spellings, repositories, tags."""

from __future__ import annotations

import pytest

from libs.common.errors import Invalid
from libs.common.models.image import validate_image_name
from services.builder.pushes import (
    RegistryEvent,
    canonical_host,
    decode_envelope,
    follows,
    manifest_pushes,
)


@pytest.mark.parametrize(
    ("spelled", "canonical"),
    [
        ("LOCALHOST:5000", "localhost:5000"),
        ("127.0.0.1:5000", "localhost:5000"),
        ("[::1]:5000", "localhost:5000"),
        ("registry-1.docker.io", "docker.io"),
        ("index.docker.io:443", "docker.io"),
        ("Registry.Example:5000", "registry.example:5000"),
        ("[fd00::1]:5000", "[fd00::1]:5000"),
    ],
)
def test_canonical_host(spelled: str, canonical: str) -> None:
    assert canonical_host(spelled) == canonical


def test_follows_compares_repository_tag_and_host() -> None:
    source = "docker://localhost:5000/site/compute:v1"
    here = {canonical_host("127.0.0.1:5000")}
    assert follows(source, "site/compute", "v1", here)
    assert follows(source, "site/compute", "v1", None)
    assert not follows(source, "site/compute", "v2", here)
    assert not follows(source, "site/other", "v1", here)
    assert not follows(source, "site/compute", "v1", {canonical_host("localhost:5001")})
    # Pinned digests, other transports and junk follow nothing.
    assert not follows(f"docker://localhost:5000/site/compute@sha256:{'a' * 64}", "site/compute",
                       "v1", None)  # fmt: skip
    assert not follows("/srv/rootfs.tar.gz", "site/compute", "v1", None)
    assert not follows("ftp://nope", "site/compute", "v1", None)
    # Docker Hub's implied names.
    assert follows("docker://rockylinux:9", "library/rockylinux", "9", {"docker.io"})


def test_only_tagged_manifest_pushes_count() -> None:
    body = (
        b'{"events": [{"action": "push", "target": {"mediaType": '
        b'"application/vnd.oci.image.manifest.v1+json", "repository": "a/b", "tag": "v1",'
        b' "url": "http://reg:5000/v2/a/b/manifests/sha256:x"}, "request": {"host": "REG:5000"}},'
        b' {"action": "pull", "target": {"mediaType": '
        b'"application/vnd.oci.image.manifest.v1+json", "repository": "a/b", "tag": "v1"}},'
        b' {"action": "push", "target": {"mediaType": "application/octet-stream",'
        b' "repository": "a/b"}}], "unknown": 1}'
    )
    (push,) = manifest_pushes(decode_envelope(body))
    assert isinstance(push, RegistryEvent) and push.hosts() == {"reg:5000"}
    with pytest.raises(Invalid):
        decode_envelope(b'{"events": 3}')


def test_image_names() -> None:
    assert validate_image_name("rocky-9.4_x") == "rocky-9.4_x"
    for bad in ("", ".hidden", "-x", "a/b", "a b", "x" * 129, "a*b"):
        with pytest.raises(Invalid):
            validate_image_name(bad)
