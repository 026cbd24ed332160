"""Helpers for builder-service tests: a real `wolfpack run builder` on a real nats-server,
an event watcher on `wolfpack.image.>`, KV reads, rootfs trees (busybox, a kernel) and the
wolfctl CLI run as a process."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import nats
from nats.aio.msg import Msg

from libs.common import names, subjects
from libs.common.models.image import (
    ImageBuilt,
    ImageFailed,
    ImageJob,
    ImageMeta,
    ImageProgress,
    ImageUnchanged,
)
from libs.runtime.lab.rootfs import busybox_tree
from tests.builder.vnfs.helpers import unpack
from tests.cli import run_cli_async
from tests.needs import unavailable
from tests.stack import (
    log_tail,
    nats_client,
    run_service,
    start_nats,
    stop_process,
    wait_healthy,
)

API = "/api/v1"
BUSYBOX = Path("/bin/busybox")
KERNEL_PACKAGE = "linux-image-cloud-amd64"
EVENT_TIMEOUT = 120.0
EVENT_TYPES: dict[str, type[msgspec.Struct]] = {
    "progress": ImageProgress,
    "built": ImageBuilt,
    "failed": ImageFailed,
    "unchanged": ImageUnchanged,
}


@dataclass
class Builder:
    url: str
    token: str
    nats_url: str
    data: Path
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url + API, headers=self.headers, timeout=60)

    def log_text(self) -> str:
        return log_tail(self.log, 200)


def launch_builder(data: Path, nats_url: str) -> Builder:
    process, port, log = run_service("builder", data, nats_url)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, process, log)
    token = (data / names.TOKEN_FILE).read_text().strip()
    return Builder(url, token, nats_url, data, process, log)


@contextlib.asynccontextmanager
async def builder_running(data: Path, nats_url: str) -> AsyncIterator[Builder]:
    """A builder process on `data` and `nats_url`, healthy, stopped on the way out."""
    builder = await asyncio.to_thread(launch_builder, data, nats_url)
    try:
        yield builder
    finally:
        await asyncio.to_thread(stop_process, builder.process)


@contextlib.contextmanager
def start_builder(tmp: Path, data: Path | None = None) -> Iterator[Builder]:
    """nats-server and the builder (DATA = `data`, default tmp/data)."""
    with start_nats(tmp / "nats") as server:
        builder = launch_builder(data or tmp / "data", server.url)
        try:
            yield builder
        finally:
            stop_process(builder.process)


@dataclass
class Watcher:
    """Every image event since it started, decoded, in order of arrival."""

    nc: Any
    events: list[tuple[str, str, Any]] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)  # subjects as they came
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def _on(self, msg: Msg) -> None:
        self.raw.append(msg.subject)
        _, name, verb = subjects.parse(msg.subject)
        model = EVENT_TYPES.get(verb)
        payload = (
            msgspec.json.decode(msg.data, type=model) if model else msgspec.json.decode(msg.data)
        )
        self.events.append((name, verb, payload))
        self._arrived.set()

    def of(self, name: str, verb: str | None = None, job: str | None = None) -> list[Any]:
        return [
            payload
            for n, v, payload in self.events
            if n == name
            and (verb is None or v == verb)
            and (job is None or getattr(payload, "job", None) == job)
        ]

    async def wait(
        self,
        name: str,
        verbs: tuple[str, ...],
        job: str | None = None,
        within: float = EVENT_TIMEOUT,
        where: Callable[[Any], bool] | None = None,
    ) -> tuple[str, Any]:
        """The first event of `name` with one of `verbs` (of `job`, and `where` says yes),
        waiting for it."""
        async with asyncio.timeout(within):
            while True:
                for n, verb, payload in self.events:
                    if n != name or verb not in verbs or (job and payload.job != job):
                        continue
                    if where is None or where(payload):
                        return verb, payload
                self._arrived.clear()
                await self._arrived.wait()

    async def end_of(self, name: str, job: str, within: float = EVENT_TIMEOUT) -> Any:
        """The `built`, `failed` or `unchanged` event of a job."""
        _, payload = await self.wait(name, ("built", "failed", "unchanged"), job, within)
        return payload


@contextlib.asynccontextmanager
async def watching(nats_url: str) -> AsyncIterator[Watcher]:
    async with nats_client(nats_url) as nc:
        watcher = Watcher(nc)
        await nc.subscribe(subjects.every("image"), cb=watcher._on)
        await nc.flush()
        yield watcher


async def read_kv(nats_url: str, name: str) -> ImageMeta | None:
    """KV `images` as any service reads it (revision filled in)."""
    async with nats_client(nats_url) as nc:
        kv = await nc.jetstream().key_value(names.BUCKET_IMAGES)
        try:
            entry = await kv.get(name)
        except nats.js.errors.KeyNotFoundError:
            return None
        meta = msgspec.json.decode(entry.value or b"", type=ImageMeta)
        meta.revision = entry.revision or 0
        return meta


async def start_import(api: httpx.AsyncClient, **body: Any) -> ImageJob:
    r = await api.post("/images", json=body)
    assert r.status_code == 202, r.text
    return msgspec.json.decode(r.content, type=ImageJob)


async def import_image(api: httpx.AsyncClient, watcher: Watcher, **body: Any) -> Any:
    """POST /images and wait for the job's last event."""
    job = await start_import(api, **body)
    return await watcher.end_of(body["name"], job.id)


async def rebuild(api: httpx.AsyncClient, watcher: Watcher, name: str) -> Any:
    r = await api.post(f"/images/{name}:build")
    assert r.status_code == 202, r.text
    return await watcher.end_of(name, r.json()["id"])


def blob(data: Path, digest: str) -> Path:
    return data / "cas" / "sha256" / digest[:2] / digest


def unpacked_image(data: Path, digest: str, into: Path) -> Path:
    """The image blob unpacked the kernel's way (concatenated members, later entries win)."""
    unpack(blob(data, digest).read_bytes(), into)
    return into


def leftovers(data: Path) -> list[str]:
    """What a finished job must not leave: staging folders, temporary blobs."""
    staging = data / "images" / ".staging"
    found = [str(p) for p in staging.iterdir()] if staging.is_dir() else []
    return found + [str(p) for p in (data / "cas").rglob(".tmp-*")]


def mounted_below(path: Path) -> list[str]:
    """Mount points at or below `path`, as this process's mount namespace sees them."""
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    return [p for p in points if p == str(path) or p.startswith(f"{path}/")]


# -- trees --------------------------------------------------------------------------------


def busybox_rootfs(root: Path, *, kernel: bytes | None = b"not really a kernel\n") -> Path:
    """/bin/busybox with its applets as symlinks, a few /etc files, and (unless `kernel` is
    None) a stand-in /boot/vmlinuz-1.0.0 with that content."""
    if not BUSYBOX.is_file():
        unavailable("busybox-static is not installed (/bin/busybox)")
    busybox_tree(root)  # the same tree the boot lab's image starts from
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\n")
    (root / "etc/hostname").write_text("busybox\n")
    (root / "etc/resolv.conf").write_text("# the image's own\n")
    if kernel is not None:
        (root / "boot").mkdir(exist_ok=True)
        (root / "boot/vmlinuz-1.0.0").write_bytes(kernel)
    return root


def installed_kernel() -> tuple[Path, str]:
    """The Debian cloud kernel of this machine: (/boot/vmlinuz-VER, VER)."""
    done = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Status}", KERNEL_PACKAGE], capture_output=True, text=True
    )
    if done.returncode != 0 or "install ok installed" not in done.stdout:
        unavailable(f"{KERNEL_PACKAGE} is not installed")
    found = sorted(Path("/boot").glob("vmlinuz-*"))
    found = [k for k in found if (Path("/lib/modules") / k.name.removeprefix("vmlinuz-")).is_dir()]
    if not found:
        unavailable("no /boot/vmlinuz-* with its /lib/modules tree on this machine")
    kernel = found[-1]
    return kernel, kernel.name.removeprefix("vmlinuz-")


def add_real_kernel(root: Path) -> tuple[Path, str]:
    """Copy the machine's kernel and its module tree into `root`."""
    kernel, version = installed_kernel()
    (root / "boot").mkdir(exist_ok=True)
    shutil.copy2(kernel, root / "boot" / kernel.name)
    shutil.copytree(Path("/lib/modules") / version, root / "lib/modules" / version, symlinks=True)
    return kernel, version


def tarball(root: Path, dest: Path) -> Path:
    """`tar` of the tree (gzip by pigz when there is one), owners kept as numbers."""
    compress = ["-I", "pigz"] if shutil.which("pigz") else ["-z"]
    subprocess.run(
        ["tar", "--numeric-owner", *compress, "-cf", str(dest), "-C", str(root), "."], check=True
    )
    return dest


# -- wolfctl ------------------------------------------------------------------------------


async def wolfctl(
    builder: Builder, *args: str, stdin: str = "", within: float = 300
) -> subprocess.CompletedProcess[str]:
    """`wolfctl ARGS` in a fresh process that finds the builder and NATS in the environment."""
    env = {
        "WOLFPACK_BUILDER_URL": builder.url,
        "WOLFPACK_NATS": builder.nats_url,
        "WOLFPACK_TOKEN": builder.token,
        "COLUMNS": "120",
    }
    return await run_cli_async("wolfctl", *args, env=env, stdin=stdin, within=within)


def generations(folder: Path, count: int) -> list[Path]:
    """`count` busybox archives that differ in one file: /etc/generation holds n."""
    tree = busybox_rootfs(folder / "tree")
    made = []
    for generation in range(count):
        (tree / "etc" / "generation").write_text(f"{generation}\n")
        made.append(tarball(tree, folder / f"gen-{generation}.tar.gz"))
    return made
