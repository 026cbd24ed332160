"""Fixtures for the builder tests: a real `wolfpack run builder` per test module with its API
client and event watcher, a busybox tarball to import, and a real CNCF Distribution registry
(Debian's docker-registry) on a loopback port, open or behind htpasswd auth."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from libs.common.bus.server import free_port
from tests.builder.helpers import Builder, Watcher, busybox_rootfs, start_builder, tarball, watching
from tests.builder.sources.helpers import OciRegistry
from tests.needs import need_command, unavailable

REGISTRY_BIN = "docker-registry"
USER, PASSWORD = "wolf", "pack-secret"


@pytest.fixture(scope="module")
def builder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Builder]:
    """One builder (and its nats-server) per test module."""
    with start_builder(tmp_path_factory.mktemp("builder")) as running:
        yield running


@pytest.fixture
async def api(builder: Builder) -> AsyncIterator[httpx.AsyncClient]:
    async with builder.client() as client:
        yield client


@pytest.fixture
async def events(builder: Builder) -> AsyncIterator[Watcher]:
    async with watching(builder.nats_url) as watcher:
        yield watcher


@pytest.fixture(scope="module")
def busybox_tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small busybox image as a .tar.gz (made once per test module)."""
    folder = tmp_path_factory.mktemp("busybox")
    return tarball(busybox_rootfs(folder / "tree"), folder / "busybox.tar.gz")


def _start(folder: Path, htpasswd: Path | None) -> OciRegistry:
    need_command(REGISTRY_BIN, "docker-registry")
    port = free_port()
    auth = (
        f"auth:\n  htpasswd:\n    realm: wolfpack-test\n    path: {htpasswd}\n" if htpasswd else ""
    )
    config = folder / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: error\n"
        f"storage:\n  filesystem:\n    rootdirectory: {folder / 'storage'}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n" + auth
    )
    log = (folder / "registry.log").open("wb")
    process = subprocess.Popen(
        [REGISTRY_BIN, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
    )
    return OciRegistry.started(f"127.0.0.1:{port}", process, folder / "registry.log")


def _stop(registry: OciRegistry) -> None:
    registry.process.terminate()
    try:
        registry.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        registry.process.kill()
        registry.process.wait()


@pytest.fixture(scope="session")
def oci_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OciRegistry]:
    """An open registry (plain HTTP) shared by the session; tests use their own repos."""
    registry = _start(tmp_path_factory.mktemp("oci-registry"), None)
    yield registry
    _stop(registry)


def htpasswd_line(user: str, password: str) -> str | None:
    """A bcrypt htpasswd line (what docker-registry accepts), or None without a tool."""
    if shutil.which("htpasswd"):
        done = subprocess.run(
            ["htpasswd", "-Bbn", user, password], capture_output=True, text=True, check=True
        )
        return done.stdout.strip()
    try:
        import bcrypt
    except ImportError:
        return None
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()
    return f"{user}:{hashed}"


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OciRegistry]:
    """A registry behind htpasswd basic auth (user `wolf`)."""
    line = htpasswd_line(USER, PASSWORD)
    if line is None:
        unavailable("neither htpasswd (apache2-utils) nor python bcrypt to make an htpasswd")
        return
    folder = tmp_path_factory.mktemp("oci-registry-auth")
    (folder / "htpasswd").write_text(line + "\n")
    registry = _start(folder, folder / "htpasswd")
    yield registry
    _stop(registry)
