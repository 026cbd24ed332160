"""The deploy tests' engine, images and stack: a dockerd (started here if none answers), the
wolfpack image built once per session from the working tree, and one compose project that the
tests share, removed with its volumes at the end."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.compose import Project, need_compose_file
from tests.deploy.engine import engine
from tests.deploy.images import Built, base_image, build_wolfpack
from tests.deploy.stack import Stack, started

# The tests' own tag: a session builds it again from the working tree, over the last one.
WOLFPACK_TAG = "wolfpack-test/wolfpack:tests"


@pytest.fixture(scope="package")
def docker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    need_compose_file()
    with engine(tmp_path_factory.mktemp("dockerd") / "dockerd.log") as client:
        yield client


@pytest.fixture(scope="package")
def wolfpack_image(docker: str) -> Built:
    built = build_wolfpack(docker, WOLFPACK_TAG, base_image(docker))
    print(f"\nwolfpack image: built in {built.seconds:.1f} s, {built.size / 1e6:.0f} MB")
    return built


# Package scope: the stack (and a dockerd these tests started) go when the last test of
# tests/deploy is done, not at the end of the session: they would weigh on every later test.
@pytest.fixture(scope="package")
def stack(
    docker: str, wolfpack_image: Built, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The compose stack, NATS from the wolfpack image (Docker Hub's is out of reach here)."""
    imports = tmp_path_factory.mktemp("import")
    project = Project(
        name=f"wptest{os.getpid()}",
        docker=docker,
        image=wolfpack_image.tag,
        import_dir=imports,
        variables={"NATS_IMAGE": wolfpack_image.tag},
    )
    with started(project) as running:
        yield running


@pytest.fixture
def import_dir(stack: Stack) -> Path:
    return stack.project.import_dir
