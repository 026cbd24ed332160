"""Push-triggered rebuilds end to end: a real docker-registry whose `notifications` point at
the builder's webhook (with the API token), images pushed by skopeo, events on NATS."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from libs.common import subjects
from libs.common.bus.server import NatsServer, free_port
from libs.common.models.image import ImagePushed
from tests.builder.helpers import (
    Builder,
    Watcher,
    import_image,
    launch_builder,
    read_kv,
    watching,
)
from tests.builder.sources.helpers import OciRegistry, directory, file, image_layout, push
from tests.needs import need_command
from tests.stack import nats_client, stop_process

ENVELOPE = "application/vnd.docker.distribution.events.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def start_notifying_registry(folder: Path, builder: Builder) -> OciRegistry:
    """docker-registry on a loopback port, notifying the builder of every event."""
    need_command("docker-registry", "docker-registry")
    port = free_port()
    config = folder / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: error\n"
        f"storage:\n  filesystem:\n    rootdirectory: {folder / 'storage'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
        "notifications:\n"
        "  endpoints:\n"
        "    - name: wolfpack\n"
        f"      url: {builder.url}/api/v1/webhooks/registry\n"
        "      headers:\n"
        f"        Authorization: [Bearer {builder.token}]\n"
        "      timeout: 5s\n"
        "      threshold: 5\n"
        "      backoff: 1s\n"
        "      ignoredmediatypes:\n"
        "        - application/octet-stream\n"
    )
    log = (folder / "registry.log").open("wb")
    process = subprocess.Popen(
        ["docker-registry", "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
    )
    return OciRegistry.started(f"127.0.0.1:{port}", process, folder / "registry.log")


@pytest.fixture(scope="module")
def notifying(tmp_path_factory: pytest.TempPathFactory, builder: Builder) -> Iterator[OciRegistry]:
    registry = start_notifying_registry(tmp_path_factory.mktemp("notifying"), builder)
    yield registry
    stop_process(registry.process)


def version_layout(folder: Path, version: str) -> Path:
    """An image whose /etc/version says `version`, with a kernel; tag `latest`."""
    layer = [
        directory("etc"),
        file("etc/version", f"{version}\n".encode()),
        directory("boot"),
        file("boot/vmlinuz-6.1.0", b"kernel"),
    ]
    return image_layout(folder / version, [layer], tag="latest")


def pushed(layout: Path, where: str) -> None:
    push(layout, "latest", where)


async def test_a_push_rebuilds_and_the_same_digest_again_does_nothing(
    builder: Builder,
    api: httpx.AsyncClient,
    events: Watcher,
    notifying: OciRegistry,
    tmp_path: Path,
) -> None:
    where = f"{notifying.host}/site/compute:latest"
    await asyncio.to_thread(pushed, version_layout(tmp_path, "v1"), where)
    first = await import_image(
        api, events, name="compute", source=f"docker://{where}", insecure=True
    )
    assert first.__class__.__name__ == "ImageBuilt", first

    # v2 pushed: the registry calls the webhook, `pushed` goes out, the builder rebuilds.
    await asyncio.to_thread(pushed, version_layout(tmp_path, "v2"), where)
    _, rebuilt = await events.wait("compute", ("built",), within=60, where=by_push)
    # v2's push: the registry's notification of v1's push may come late, after the import.
    _, push_event = await events.wait(
        "compute", ("pushed",), where=lambda e: e["digest"] != first.source_digest
    )
    assert push_event["repository"] == "site/compute" and push_event["tag"] == "latest"
    assert rebuilt.kind == "push" and rebuilt.image_digest != first.image_digest
    assert rebuilt.source_digest == push_event["digest"] != first.source_digest
    meta = await read_kv(builder.nats_url, "compute")
    assert meta is not None and meta.image_digest == rebuilt.image_digest
    assert meta.source == f"docker://{where}"  # still follows the tag
    version = builder.data / "images" / "compute" / "rootfs" / "etc" / "version"
    assert await asyncio.to_thread(version.read_text) == "v2\n"

    # The same digest pushed again: the push is seen, checked, and nothing is rebuilt.
    await asyncio.to_thread(pushed, version_layout(tmp_path, "v2"), where)
    _, unchanged = await events.wait(
        "compute", ("unchanged",), within=60, where=lambda e: e.digest == rebuilt.source_digest
    )
    assert unchanged.digest == rebuilt.source_digest
    assert [b.job for b in events.of("compute", "built") if by_push(b)] == [rebuilt.job]
    assert await read_kv(builder.nats_url, "compute") == meta


def by_push(event: Any) -> bool:
    return bool(event.kind == "push")


def envelope(*items: dict[str, object]) -> bytes:
    return msgspec.json.encode({"events": list(items)})


def notification(
    action: str, media_type: str, repository: str, tag: str | None, host: str
) -> dict[str, object]:
    target = {
        "mediaType": media_type,
        "digest": "sha256:" + "ab" * 32,
        "repository": repository,
        "url": f"http://{host}/v2/{repository}/manifests/sha256:{'ab' * 32}",
    }
    if tag:
        target["tag"] = tag
    return {"id": f"{action}-{repository}-{tag}-{host}", "action": action, "target": target,
            "request": {"host": host, "method": "PUT"}}  # fmt: skip


async def test_the_webhook_picks_manifest_pushes_of_followed_tags(
    builder: Builder,
    api: httpx.AsyncClient,
    events: Watcher,
    oci_registry: OciRegistry,
    tmp_path: Path,
) -> None:
    where = f"{oci_registry.host}/site/login:latest"
    await asyncio.to_thread(pushed, version_layout(tmp_path, "v1"), where)
    imported = await import_image(
        api, events, name="login", source=f"docker://{where}", insecure=True
    )
    port = oci_registry.host.rpartition(":")[2]
    headers = {"Content-Type": ENVELOPE}

    noise = envelope(
        notification("pull", OCI_MANIFEST, "site/login", "latest", oci_registry.host),
        notification("push", "application/octet-stream", "site/login", None, oci_registry.host),
        notification("push", OCI_MANIFEST, "site/login", None, oci_registry.host),  # by digest
        notification("push", OCI_MANIFEST, "site/other", "latest", oci_registry.host),
        notification("push", OCI_MANIFEST, "site/login", "v9", oci_registry.host),
        notification("push", OCI_MANIFEST, "site/login", "latest", "elsewhere:5000"),
    )
    r = await api.post("/webhooks/registry", content=noise, headers=headers)
    assert r.status_code == 200 and r.json() == {"pushed": [], "ignored": 6}

    # Another spelling of the same host still matches; the builder checks the digest itself.
    spelled = envelope(
        notification("push", OCI_MANIFEST, "site/login", "latest", f"LOCALHOST:{port}")
    )
    r = await api.post("/webhooks/registry", content=spelled, headers=headers)
    assert r.status_code == 200 and r.json() == {"pushed": ["login"], "ignored": 0}
    _, outcome = await events.wait(
        "login", ("built", "unchanged", "failed"), where=lambda e: e.job != imported.job
    )
    assert outcome.__class__.__name__ == "ImageUnchanged"

    r = await api.post("/webhooks/registry", content=b"{not json", headers=headers)
    assert r.status_code == 400 and r.json()["field"] == "events"


async def test_a_push_published_while_the_builder_is_down_is_handled_after_restart(
    nats_server: NatsServer, oci_registry: OciRegistry, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    where = f"{oci_registry.host}/site/restart:latest"
    await asyncio.to_thread(pushed, version_layout(tmp_path, "v1"), where)
    builder = await asyncio.to_thread(launch_builder, data, nats_server.url)
    try:
        async with watching(nats_server.url) as events, builder.client() as api:
            first = await import_image(
                api, events, name="restart", source=f"docker://{where}", insecure=True
            )
            await asyncio.to_thread(stop_process, builder.process)

            await asyncio.to_thread(pushed, version_layout(tmp_path, "v2"), where)
            event = ImagePushed(name="restart", repository="site/restart", tag="latest",
                                digest="sha256:" + "0" * 64)  # fmt: skip
            async with nats_client(nats_server.url) as nc:
                await nc.jetstream().publish(
                    subjects.image("restart", "pushed"), msgspec.json.encode(event)
                )

            builder = await asyncio.to_thread(launch_builder, data, nats_server.url)
            _, rebuilt = await events.wait(
                "restart", ("built", "failed"), within=60, where=lambda e: e.job != first.job
            )
            assert rebuilt.__class__.__name__ == "ImageBuilt", rebuilt
            assert rebuilt.kind == "push" and rebuilt.source_digest != first.source_digest
    finally:
        await asyncio.to_thread(stop_process, builder.process)
