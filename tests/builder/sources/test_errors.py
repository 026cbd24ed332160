"""Bad sources: each ends in a clear error, the previous image stays, no staging is left."""

from __future__ import annotations

import asyncio
import json
import os
import tarfile
from pathlib import Path

import pytest

from libs.common.bus.server import free_port
from libs.common.errors import Invalid, NotFound, Unauthorized, WolfpackError
from services.builder.sources import FetchOptions, import_rootfs, inspect_digest
from services.builder.sources.skopeo import skopeo_error
from tests.builder.conftest import PASSWORD, USER
from tests.builder.sources.helpers import (
    OciRegistry,
    base_layer,
    directory,
    file,
    image_layout,
    push,
    skopeo,
    snapshot,
    tar_bytes,
)


class Target:
    """A destination holding a good image, and the staging folder beside it."""

    def __init__(self, tmp_path: Path) -> None:
        self.dest = tmp_path / "images" / "node"
        self.staging = tmp_path / "images" / ".staging"
        (self.dest / "etc").mkdir(parents=True)
        (self.dest / "etc" / "hostname").write_text("good\n")
        self.before = snapshot(self.dest)

    async def fails(
        self, source: str, kind: type[WolfpackError], match: str, fetch: FetchOptions | None = None
    ) -> WolfpackError:
        with pytest.raises(kind, match=match) as caught:
            await import_rootfs(source, self.dest, staging_root=self.staging, fetch=fetch)
        assert snapshot(self.dest) == self.before
        assert os.listdir(self.staging) == []
        return caught.value


@pytest.fixture
def target(tmp_path: Path) -> Target:
    return Target(tmp_path)


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    return image_layout(tmp_path / "layout", [base_layer(), [file("etc/motd", b"hi\n")]], tag="v1")


async def test_truncated_gzip_tarball(tmp_path: Path, target: Target) -> None:
    tarball = tmp_path / "rootfs.tar.gz"
    whole = tar_bytes([directory("etc"), file("etc/big", os.urandom(100_000))], "gzip")
    tarball.write_bytes(whole[: len(whole) // 2])
    error = await target.fails(str(tarball), Invalid, "corrupt or truncated archive")
    assert str(tarball) in error.message


async def test_not_a_tarball(tmp_path: Path, target: Target) -> None:
    tarball = tmp_path / "rootfs.tar.zst"
    tarball.write_bytes(b"this is not zstd at all" * 100)
    await target.fails(str(tarball), Invalid, "corrupt or truncated archive")


async def test_missing_paths(tmp_path: Path, target: Target) -> None:
    await target.fails(str(tmp_path / "nope.tar.gz"), NotFound, "no such file")
    await target.fails(str(tmp_path / "nodir"), NotFound, "no such directory")
    await target.fails(f"oci:{tmp_path}", NotFound, "not an OCI image layout")
    await target.fails(f"docker-archive:{tmp_path}/x.tar", NotFound, "no such file")


async def test_tampered_blob_in_layout(tmp_path: Path, target: Target, layout: Path) -> None:
    manifest_desc = json.loads((layout / "index.json").read_text())["manifests"][0]
    manifest = json.loads(
        (layout / "blobs" / "sha256" / manifest_desc["digest"].removeprefix("sha256:")).read_bytes()
    )
    layer = manifest["layers"][1]["digest"]
    blob = layout / "blobs" / "sha256" / layer.removeprefix("sha256:")
    data = bytearray(blob.read_bytes())
    data[20] ^= 0xFF  # same size, other content
    blob.write_bytes(bytes(data))

    error = await target.fails(f"oci:{layout}:v1", Invalid, "does not match its digest")
    assert f"layer 2 blob {layer}" in error.message

    # The same layout as an archive goes through skopeo, which checks digests as it copies.
    archive = tmp_path / "tampered.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(layout, arcname=".")
    await target.fails(f"oci-archive:{archive}:v1", Invalid, "does not match its digest")


async def test_truncated_archives(tmp_path: Path, target: Target, layout: Path) -> None:
    docker = tmp_path / "docker.tar"
    await asyncio.to_thread(skopeo, "copy", f"oci:{layout}:v1", f"docker-archive:{docker}:a/b:v1")
    docker.write_bytes(docker.read_bytes()[:3000])
    await target.fails(f"docker-archive:{docker}", Invalid, "corrupt or truncated archive")
    oci = tmp_path / "oci.tar"
    await asyncio.to_thread(skopeo, "copy", f"oci:{layout}:v1", f"oci-archive:{oci}:v1")
    oci.write_bytes(oci.read_bytes()[:3000])
    await target.fails(f"oci-archive:{oci}:v1", Invalid, "corrupt or truncated archive")


async def test_unknown_tag_and_repository(
    target: Target, oci_registry: OciRegistry, layout: Path
) -> None:
    await asyncio.to_thread(push, layout, "v1", f"{oci_registry.host}/errors/known:v1")
    insecure = FetchOptions(insecure=True)
    base = f"docker://{oci_registry.host}/errors"
    await target.fails(f"{base}/known:nope", NotFound, "no such image or tag", insecure)
    await target.fails(f"{base}/never-pushed:v1", NotFound, "no such", insecure)
    with pytest.raises(NotFound, match="no such image or tag"):
        await inspect_digest(f"{base}/known:nope", insecure)
    # Without --insecure the plain-HTTP registry is explained, not a TLS riddle.
    await target.fails(f"{base}/known:v1", Invalid, "speaks plain HTTP; import it as insecure")
    await target.fails(
        f"{base}/known:v1", Invalid, "the image is linux/amd64, not linux/s390x",
        FetchOptions(insecure=True, platform="linux/s390x"),
    )  # fmt: skip


async def test_image_of_another_platform(target: Target, layout: Path) -> None:
    """A single-platform image is not taken for another platform without a word."""
    await target.fails(
        f"oci:{layout}:v1", Invalid, "the image is linux/amd64, not linux/arm64",
        FetchOptions(platform="linux/arm64"),
    )  # fmt: skip


async def test_unreachable_registry(target: Target) -> None:
    closed = free_port()
    await target.fails(
        f"docker://127.0.0.1:{closed}/any/image:v1", Invalid,
        rf"127\.0\.0\.1:{closed}/any/image:v1: registry unreachable \(.*connection refused\)",
        FetchOptions(insecure=True),
    )  # fmt: skip


async def test_unauthorized(target: Target, auth_registry: OciRegistry, layout: Path) -> None:
    creds = f"{USER}:{PASSWORD}"
    await asyncio.to_thread(push, layout, "v1", f"{auth_registry.host}/private/img:v1", creds=creds)
    ref = f"docker://{auth_registry.host}/private/img:v1"
    await target.fails(ref, Unauthorized, "refused the credentials", FetchOptions(insecure=True))
    await target.fails(
        ref, Unauthorized, "refused the credentials",
        FetchOptions(insecure=True, creds=f"{USER}:wrong"),
    )  # fmt: skip
    result = await import_rootfs(
        ref, target.dest, staging_root=target.staging,
        fetch=FetchOptions(insecure=True, creds=creds),
    )  # fmt: skip
    assert (target.dest / "etc" / "motd").read_text() == "hi\n"
    assert result.manifest_digest is not None


async def test_credentials_from_auth_file(
    tmp_path: Path, target: Target, auth_registry: OciRegistry, layout: Path
) -> None:
    creds = f"{USER}:{PASSWORD}"
    await asyncio.to_thread(
        push, layout, "v1", f"{auth_registry.host}/private/file:v1", creds=creds
    )
    authfile = tmp_path / "auth.json"
    import base64

    token = base64.b64encode(creds.encode()).decode()
    authfile.write_text(json.dumps({"auths": {auth_registry.host: {"auth": token}}}))
    await import_rootfs(
        f"docker://{auth_registry.host}/private/file:v1", target.dest, staging_root=target.staging,
        fetch=FetchOptions(insecure=True, authfile=str(authfile)),
    )  # fmt: skip
    assert (target.dest / "etc" / "motd").read_text() == "hi\n"


async def test_docker_daemon_without_engine(
    tmp_path: Path, target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/docker.sock")
    await target.fails(
        "docker-daemon:busybox:latest", WolfpackError,
        f"no Docker engine at unix://{tmp_path}/docker.sock: ",
    )  # fmt: skip
    if await asyncio.to_thread(os.path.exists, "/var/run/docker.sock"):
        return  # an engine may be there: the default place cannot be shown to fail
    monkeypatch.delenv("DOCKER_HOST")
    await target.fails(
        "docker-daemon:busybox:latest", WolfpackError,
        "no Docker engine at unix:///var/run/docker.sock: ",
    )  # fmt: skip


def test_skopeo_messages_become_clear_errors() -> None:
    """Messages of registries not run here (x509, 403), as skopeo 1.9 prints them."""
    log = 'time="t" level=fatal msg="initializing source docker://h/r:t: {}"'
    x509 = log.format('pinging container registry h: Get \\"https://h/v2/\\": x509: certificate'
                      " signed by unknown authority")  # fmt: skip
    assert "not trusted" in skopeo_error("docker://h/r:t", x509).message
    denied = log.format(
        "reading manifest t in h/r: denied: requested access to the resource is denied"
    )
    assert isinstance(skopeo_error("docker://h/r:t", denied), Unauthorized)
    other = skopeo_error("docker://h/r:t", log.format("something new"))
    assert (
        other.message
        == "docker://h/r:t: skopeo failed: initializing source docker://h/r:t: something new"
    )
