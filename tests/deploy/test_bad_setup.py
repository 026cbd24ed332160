"""A service started without the set-up it needs (compose's nats-auth step, or its data
volume) says in one log line what is missing and keeps trying: once the missing files are
there, it starts, in the same process, with no crash loop and no traceback on the way."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from libs.common import endpoints, names
from tests.deploy.compose import DATA
from tests.deploy.stack import Stack
from tests.waiting import eventually_sync

MISSING = "wants a token"


@pytest.fixture
def lonely(stack: Stack, request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """A registry container on the stack's network, with DATA given by the test: (its
    container name, its DATA). Removed, with its anonymous volume, at the end."""
    data: str = request.param
    project = stack.project
    name = f"{project.name}_lonely_{request.node.name.split('[')[-1].rstrip(']')}"
    project.docker_run(
        "run",
        "-d",
        "--name",
        name,
        "--network",
        f"{project.name}_default",
        project.image,
        "run",
        "registry",
        "--nats",
        "nats://nats:4222",
        "--data",
        data,
    )
    try:
        yield name, data
    finally:
        project.docker_run("rm", "-f", "-v", name, check=False)


def logs(stack: Stack, container: str) -> str:
    done = stack.project.docker_run("logs", container)
    return done.stdout + done.stderr


@pytest.mark.parametrize(
    "lonely",
    [
        pytest.param(DATA, id="no-nats-auth"),  # the image's empty volume: nats-auth never ran
        pytest.param("/srv/no-volume", id="no-volume"),  # DATA is not there at all
    ],
    indirect=True,
)
def test_a_service_missing_its_setup_says_so_once_and_starts_when_it_is_done(
    stack: Stack, lonely: tuple[str, str], tmp_path: Path
) -> None:
    container, data = lonely
    said = eventually_sync(
        lambda: [line for line in logs(stack, container).splitlines() if MISSING in line],
        "the line saying what is missing",
        within=60,
        every=0.5,
    )
    assert len(said) == 1 and "nats-auth" in said[0] and data in said[0], said

    # Do what the line asks: the data folder nats-auth fills, here copied from the stack's.
    for file in (endpoints.FILE, names.NATS_TOKEN_FILE):
        copy = tmp_path / file
        copy.write_text(stack.project.read("registry", f"{DATA}/{file}"))
        copy.chmod(0o600)
    stack.project.docker_run("exec", container, "mkdir", "-p", data)
    for file in (endpoints.FILE, names.NATS_TOKEN_FILE):
        stack.project.docker_run("cp", str(tmp_path / file), f"{container}:{data}/{file}")

    eventually_sync(
        lambda: (
            "registry ready" in logs(stack, container) or "listening on" in logs(stack, container)
        ),
        "the registry started once its set-up was done",
        within=60,
        every=0.5,
    )
    shown = logs(stack, container)
    state = stack.project.docker_run(
        "inspect", "-f", "{{.State.Running}} {{.RestartCount}}", container
    ).stdout.split()
    assert state == ["true", "0"], shown
    assert "Traceback" not in shown, shown
    assert sum(MISSING in line for line in shown.splitlines()) == 1, shown
