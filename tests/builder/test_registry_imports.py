"""Registry imports through the builder service: a real docker-registry (plain HTTP, and one
behind htpasswd), images pushed by skopeo; by tag, by digest, from a multi-platform index."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path

import httpx
import pytest

from tests.builder.conftest import PASSWORD, USER
from tests.builder.helpers import Builder, Watcher, import_image, read_kv
from tests.builder.sources.helpers import (
    Entry,
    OciRegistry,
    base_layer,
    directory,
    file,
    image_layout,
    multiplatform_layout,
    push,
    snapshot,
    upper_layers,
)


def kernel_layer(version: str = "5.10.0-28-amd64") -> list[Entry]:
    return [directory("boot"), file(f"boot/vmlinuz-{version}", b"a kernel, " + version.encode())]


def layout_digest(layout: Path, tag: str) -> str:
    index = json.loads((layout / "index.json").read_text())
    for desc in index["manifests"]:
        if desc["annotations"]["org.opencontainers.image.ref.name"] == tag:
            return str(desc["digest"])
    raise AssertionError(tag)


@pytest.fixture
async def layered(tmp_path: Path, oci_registry: OciRegistry) -> tuple[str, str]:
    """A multi-layer image (whiteouts, opaque dir) with a kernel, pushed as svc/layered:v1."""
    layout = image_layout(
        tmp_path / "layout",
        [base_layer(), *upper_layers(), kernel_layer()],
        tag="v1",
        config={"Env": ["PATH=/bin"], "Entrypoint": ["/sbin/init"], "Cmd": ["-v"]},
    )
    await asyncio.to_thread(push, layout, "v1", f"{oci_registry.host}/svc/layered:v1")
    return f"{oci_registry.host}/svc/layered", layout_digest(layout, "v1")


async def test_by_tag_then_by_digest(
    builder: Builder, api: httpx.AsyncClient, events: Watcher, layered: tuple[str, str]
) -> None:
    repo, digest = layered
    built = await import_image(
        api, events, name="by-tag", source=f"docker://{repo}:v1", insecure=True
    )
    assert built.__class__.__name__ == "ImageBuilt", built
    meta = await read_kv(builder.nats_url, "by-tag")
    assert meta is not None
    assert meta.source == f"docker://{repo}:v1" and meta.source_digest == digest
    assert meta.platform == "linux/amd64" and meta.insecure
    assert meta.config.env == ["PATH=/bin"] and meta.config.entrypoint == ["/sbin/init"]
    assert meta.kernel_version == "5.10.0-28-amd64"
    rootfs = builder.data / "images" / "by-tag" / "rootfs"
    check_layers_applied(rootfs)

    by_digest = f"docker://{repo}@{digest}"
    await import_image(api, events, name="by-digest", source=by_digest, insecure=True)
    pinned = await read_kv(builder.nats_url, "by-digest")
    assert pinned is not None and pinned.source_digest == digest
    # The same layers give the same tree, whatever named them.
    images = builder.data / "images"
    assert snapshot(images / "by-digest" / "rootfs") == snapshot(images / "by-tag" / "rootfs")


def check_layers_applied(rootfs: Path) -> None:
    assert (rootfs / "etc/hostname").read_text() == "node\n"  # the upper layer won
    assert not (rootfs / "var/cache/x").exists()  # whiteout
    assert sorted(p.name for p in (rootfs / "opt/old").iterdir()) == ["new"]  # opaque dir


async def test_multiplatform_index_picks_the_platform_asked_for(
    builder: Builder,
    api: httpx.AsyncClient,
    events: Watcher,
    oci_registry: OciRegistry,
    tmp_path: Path,
) -> None:
    layout = multiplatform_layout(
        tmp_path / "multi",
        {
            "amd64": [[file("arch", b"amd64\n"), *kernel_layer("6.1.0-amd64")]],
            "arm64": [[file("arch", b"arm64\n"), *kernel_layer("6.1.0-arm64")]],
        },
        tag="v1",
    )
    await asyncio.to_thread(push, layout, "v1", f"{oci_registry.host}/svc/multi:v1")
    source = f"docker://{oci_registry.host}/svc/multi:v1"

    await import_image(
        api, events, name="multi-arm", source=source, insecure=True, platform="linux/arm64"
    )
    await import_image(api, events, name="multi-amd", source=source, insecure=True)
    arm = await read_kv(builder.nats_url, "multi-arm")
    amd = await read_kv(builder.nats_url, "multi-amd")
    assert arm is not None and amd is not None
    assert (arm.platform, arm.kernel_version) == ("linux/arm64", "6.1.0-arm64")
    assert (amd.platform, amd.kernel_version) == ("linux/amd64", "6.1.0-amd64")
    # Both follow the index that was pushed.
    assert arm.source_digest == amd.source_digest == layout_digest(layout, "v1")
    arch = (builder.data / "images" / "multi-arm" / "rootfs" / "arch").read_text()
    assert arch == "arm64\n"

    failed = await import_image(
        api, events, name="multi-s390x", source=source, insecure=True, platform="linux/s390x"
    )
    assert "no image for the wanted platform" in failed.reason and failed.phase == "fetch"


async def test_a_plain_http_registry_needs_insecure(
    api: httpx.AsyncClient, events: Watcher, layered: tuple[str, str]
) -> None:
    repo, _ = layered
    failed = await import_image(api, events, name="secure", source=f"docker://{repo}:v1")
    assert failed.reason == (
        f"docker://{repo}:v1: the registry speaks plain HTTP; import it as insecure"
    )


async def test_credentials_are_used_and_kept_private(
    builder: Builder,
    api: httpx.AsyncClient,
    events: Watcher,
    auth_registry: OciRegistry,
    tmp_path: Path,
) -> None:
    layout = image_layout(tmp_path / "layout", [base_layer(), kernel_layer()], tag="v1")
    creds = f"{USER}:{PASSWORD}"
    await asyncio.to_thread(push, layout, "v1", f"{auth_registry.host}/private/img:v1", creds=creds)
    source = f"docker://{auth_registry.host}/private/img:v1"

    refused = await import_image(api, events, name="private", source=source, insecure=True)
    assert "refused the credentials" in refused.reason

    built = await import_image(
        api, events, name="private", source=source, insecure=True, creds=creds
    )
    assert built.__class__.__name__ == "ImageBuilt", built
    shown = (await api.get("/images/private")).text
    assert PASSWORD not in shown
    check_private(builder.data / "images" / "private" / "creds", creds)


def check_private(path: Path, creds: str) -> None:
    assert path.read_text().strip() == creds
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
