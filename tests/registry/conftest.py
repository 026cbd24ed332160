"""A real registry process (`wolfpack run registry`) against a real nats-server, per module;
each test starts from an empty registry."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from stack import RegistryProcess, empty_registry, start_registry


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
