"""A real bootd (`wolfpack run bootd`) beside a real registry, sharing one nats-server and one
DATA folder, once per module; tests write manifests to KV `boot` and blobs to the CAS as
overlayd would, each test under node names and MACs of its own."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx
import pytest

from libs.common import names
from libs.common.bus.connection import Bus
from libs.common.endpoints import Endpoints, write_endpoints
from libs.common.models.image import ImageMeta
from libs.common.models.overlay import BootManifest
from libs.common.store.cas import ContentStore
from tests.stack import RegistryProcess, run_service, stop_process, wait_healthy
from tests.waiting import eventually

# How long a change written to KV may take to reach bootd's answers (it follows KV on watches).
ANSWERED_WITHIN: Final = 10.0


@dataclass
class Bootd:
    url: str
    nats_url: str
    data: Path
    token: str
    registry: RegistryProcess

    @property
    def store(self) -> ContentStore:
        return ContentStore(self.data / "cas")

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@contextlib.contextmanager
def start_bootd(
    registry_process: RegistryProcess, *flags: str, env: dict[str, str] | None = None
) -> Iterator[Bootd]:
    """A real bootd (with these flags and extra environment) beside the module's registry."""
    data = Path(registry_process.data)
    write_endpoints(
        data,
        Endpoints(
            nats=registry_process.nats_url,
            services={"registry": registry_process.url},
            token_file=str(data / names.TOKEN_FILE),
        ),
    )
    process, port, log = run_service("bootd", data, registry_process.nats_url, *flags, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process, log)
        yield Bootd(url, registry_process.nats_url, data, registry_process.token, registry_process)
    finally:
        stop_process(process)


@pytest.fixture(scope="module")
def bootd_process(registry_process: RegistryProcess) -> Iterator[Bootd]:
    with start_bootd(registry_process) as started:
        yield started


@pytest.fixture
def bootd(bootd_process: Bootd) -> Bootd:
    return bootd_process


@pytest.fixture
def nats_url(registry_process: RegistryProcess) -> str:
    """The `bus` fixture connects to the NATS every bootd of this folder follows."""
    return registry_process.nats_url


@pytest.fixture
async def http(bootd: Bootd) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=bootd.url, timeout=10) as client:
        yield client


_serial = itertools.count(1)


def fresh_mac() -> str:
    """A MAC no other test in this run uses."""
    n = next(_serial)
    return f"52:54:00:{(n >> 16) & 0xFF:02x}:{(n >> 8) & 0xFF:02x}:{n & 0xFF:02x}"


@dataclass
class BootFiles:
    manifest: BootManifest
    kernel: bytes
    image: bytes
    systems: list[bytes]
    runtime: bytes


async def boot_node(
    bus: Bus,
    store: ContentStore,
    node: str,
    mac: str,
    *,
    asset_key: str | None = None,
    image: bytes | None = None,
    kernel_args: list[str] | None = None,
) -> BootFiles:
    """Blobs into the CAS and a manifest into KV `boot`, as overlayd writes them."""
    kernel = f"kernel of {node}".encode()
    image = image if image is not None else f"image of {node}".encode() * 100
    systems = [f"wwinit of {node}".encode(), f"hosts of {node}".encode()]
    runtime = f"runtime of {node}".encode()
    manifest = BootManifest(
        node=node,
        hwaddrs=[mac],
        asset_key=asset_key,
        image="demo",
        kernel_digest=await store.put_bytes(kernel),
        image_digest=await store.put_bytes(image),
        system_digests=[await store.put_bytes(s) for s in systems],
        runtime_digest=await store.put_bytes(runtime),
        kernel_args=kernel_args if kernel_args is not None else ["quiet", "crashkernel=no"],
    )
    boot = await bus.bucket(names.BUCKET_BOOT, BootManifest)
    await boot.put(node, manifest)
    return BootFiles(manifest, kernel, image, systems, runtime)


async def make_public(bus: Bus, client: httpx.AsyncClient, digest: str, size: int = 0) -> None:
    """Name `digest` as the kernel and image of an image in KV `images` (what makes a blob no
    node boots yet public), then wait until bootd (`client`) serves it."""
    images = await bus.bucket(names.BUCKET_IMAGES, ImageMeta)
    image = ImageMeta(
        name=f"public-{digest[:12]}",
        source="tests/bootd",
        image_digest=digest,
        kernel_digest=digest,
        kernel_version="test",
        size=size,
        built_at=0.0,
    )
    await images.put(image.name, image)
    await until_public(client, digest)


async def answered(
    http: httpx.AsyncClient,
    path: str,
    until: Callable[[httpx.Response], object],
    what: str,
    *,
    method: str = "GET",
    within: float = ANSWERED_WITHIN,
    **request: Any,
) -> httpx.Response:
    """bootd's first answer at `path` that `until` accepts: bootd follows KV `boot` and
    `images` on watches of its own, which no event reports. Each look is a request: no pause
    between them."""
    return await eventually(
        lambda: http.request(method, path, **request), what, within=within, until=until, every=0
    )


async def script_booting(http: httpx.AsyncClient, mac: str, key: str | None = None) -> str:
    """bootd's iPXE script for `mac` once bootd has the node's manifest (with asset key `key`)."""
    answer = await answered(
        http,
        f"/ipxe/{mac}",
        lambda answer: "kernel --name" in answer.text,
        f"bootd's script booting {mac}",
        params={"assetkey": key} if key else {},
    )
    return answer.text


async def until_public(client: httpx.AsyncClient, digest: str) -> None:
    # A matching If-None-Match is answered 304 without reading (or hashing) the blob, and
    # only once bootd may serve it: 404 before.
    await answered(
        client,
        f"/blobs/sha256/{digest}",
        lambda answer: answer.status_code == 304,
        f"blob {digest} public",
        headers={"If-None-Match": f'"{digest}"'},
    )


async def public_blob(bus: Bus, store: ContentStore, client: httpx.AsyncClient, data: bytes) -> str:
    """`data` into the CAS as a blob anyone may fetch from bootd (`client`); its digest."""
    digest = await store.put_bytes(data)
    await make_public(bus, client, digest, len(data))
    return digest
