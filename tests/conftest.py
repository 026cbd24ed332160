"""Fixtures shared by the whole suite: a real nats-server, a Bus on it, a data folder."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import settings

from libs.common.bus.connection import Bus
from libs.common.bus.retention import Retention
from libs.common.bus.server import NatsServer, free_port
from tests.needs import under_ci
from tests.stack import RegistryProcess, connected_bus, empty_registry, start_registry

# Property tests have no per-example deadline: on a loaded 2-core CI machine one slow example
# (a GC pause, a busy neighbour) is not a failure. Under CI=true they are derandomized too (the
# same examples every run, as tests/seeds.py pins the fault tests' draws), so a red run happens
# again. Loaded before any test module is imported.
settings.register_profile("wolfpack", deadline=None)
settings.register_profile("wolfpack-ci", deadline=None, derandomize=True, database=None)
settings.load_profile("wolfpack-ci" if under_ci() else "wolfpack")


@pytest.fixture
async def nats_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[NatsServer]:
    """A fresh nats-server (JetStream, file store) per test: it starts and stops in ~40 ms,
    so every test gets empty streams and buckets without any clean-up logic."""
    server = NatsServer(tmp_path_factory.mktemp("nats"), port=free_port())
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def nats_url(nats_server: NatsServer) -> str:
    """The NATS the `bus` fixture connects to: this test's own server. A folder or module
    whose tests share a stack's NATS overrides this fixture to point there."""
    return nats_server.url


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    """A Bus connected to `nats_url`, with the WOLFPACK stream and every bucket."""
    async with connected_bus(nats_url) as connected:
        yield connected


@pytest.fixture
async def small(nats_server: NatsServer) -> AsyncIterator[Bus]:
    """A Bus whose stream keeps 16 KiB of events (a service's connect sets that): for tests
    of what a reader is told when the retention dropped events."""
    bus = await Bus.connect(nats_server.url, "test", retention=Retention(max_bytes=16384))
    try:
        yield bus
    finally:
        await bus.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """An empty DATA folder."""
    path = tmp_path / "data"
    path.mkdir()
    return path


# A real registry process (`wolfpack run registry`) on a real nats-server, one per test module;
# each test starts from an empty registry.


@pytest.fixture(scope="module")
def registry_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    with start_registry(tmp_path_factory.mktemp("registry")) as process:
        yield process


@pytest.fixture
async def registry(registry_process: RegistryProcess) -> RegistryProcess:
    await empty_registry(registry_process)
    return registry_process


@pytest.fixture
async def api(registry: RegistryProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=registry.url, headers={"Authorization": f"Bearer {registry.token}"}, timeout=30
    ) as client:
        yield client
