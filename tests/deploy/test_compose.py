"""docker-compose.yml agrees with the code (no Docker engine needed), with every variable at
its default, as a site runs it: every container runs a real service, publishes that service's
port on the design's port, shares the one data volume, and its health check asks the right
port. The stack itself is run by the other tests of this folder (the tests use other ports).
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from libs.common import names

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
NATS_URL = f"nats://nats:{names.NATS_PORT}"


# `${VAR:-default}` and `${VAR-default}`, as Compose interpolates them when VAR is unset.
VARIABLE = re.compile(r"\$\{[A-Z_]+:?-([^}]*)\}")


def with_defaults(text: str) -> str:
    """The compose file's text with every variable at its default (nested ones too)."""
    while VARIABLE.search(text):
        text = VARIABLE.sub(lambda m: m.group(1), text)
    return text


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(with_defaults(COMPOSE.read_text()))
    assert "name" not in data, "Compose 1.29 rejects a top-level name:"
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with `\\` continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        out.append((keyword.upper(), args.strip()))
        pending = ""
    return out


def exec_form(args: str) -> list[str]:
    """An instruction's arguments as argv: JSON exec form, else shell words."""
    if args.startswith("["):
        value = json.loads(args)
        assert isinstance(value, list)
        return [str(v) for v in value]
    return shlex.split(args)


def words(value: str | list[Any]) -> list[str]:
    """A compose command in either form (string or list) as argv."""
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def argv(service: dict[str, Any]) -> list[str]:
    """The container's full command line: entrypoint (its own or the image's) + command."""
    entry = service.get("entrypoint")
    if entry is None:
        entry = next(exec_form(a) for k, a in dockerfile_instructions() if k == "ENTRYPOINT")
    command = service.get("command", [])
    return words(entry) + words(command)


def option(args: list[str], name: str) -> str | None:
    """Value of `--name VALUE` or `--name=VALUE` in argv."""
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def published(service: dict[str, Any]) -> set[tuple[int, int, str]]:
    """(host port, container port, protocol) for short and long `ports:` syntax."""
    out: set[tuple[int, int, str]] = set()
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            target = int(entry["target"])
            host = int(entry.get("published", target))
            out.add((host, target, entry.get("protocol", "tcp")))
            continue
        spec, _, proto = str(entry).partition("/")
        parts = spec.split(":")[-2:]  # [ADDRESS:]HOST:CONTAINER
        target = int(parts[-1])
        host = int(parts[-2]) if len(parts) > 1 else target
        out.add((host, target, proto or "tcp"))
    return out


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> source (volume name or host path) for short and long syntax."""
    out: dict[str, str] = {}
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            out[entry["target"]] = entry.get("source", "")
        else:
            source, target = str(entry).split(":")[:2]
            out[target] = source
    return out


def test_compose_has_nats_and_every_wolfpack_service(services: dict[str, Any]) -> None:
    assert set(services) == {"nats-auth", "nats", *names.SERVICES}


def test_nats_wants_the_token_that_nats_auth_writes_before_it_starts(
    services: dict[str, Any],
) -> None:
    from libs.runtime.cli import cli

    auth, nats = services["nats-auth"], services["nats"]
    args = argv(auth)
    assert args[:2] == ["wolfpack", "nats-auth"] and "nats-auth" in cli.commands
    # The URL the services use, so they present the token there (libs.common.bus.auth).
    assert option(args, "--url") == NATS_URL
    data = option(args, "--data")
    assert data == option(argv(services["registry"]), "--data")
    volume = mounts(auth).get(data)
    assert volume == mounts(services["registry"])[data]
    # nats-server loads the config nats-auth wrote, from the same volume.
    config = option(words(nats["command"]), "-c")
    assert config == f"{data}/nats/auth.conf"
    assert mounts(nats).get(data) == volume
    assert nats["depends_on"]["nats-auth"]["condition"] == "service_completed_successfully"
    assert auth["restart"] == "no"
    assert auth["image"] == services["registry"]["image"]  # the wolfpack image's entrypoint
    assert f"{volume}:{data}:ro" in nats["volumes"], "nats needs only to read the shared volume"


def test_nats_is_the_official_image_with_jetstream_on_its_own_volume(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    nats = services["nats"]
    repo = nats["image"].split(":")[0]
    assert repo in {"nats", "library/nats", "docker.io/library/nats"}, nats["image"]
    args = words(nats["command"])
    assert "-js" in args or "--jetstream" in args
    store = option(args, "-sd") or option(args, "--store_dir")
    assert store is not None, "JetStream needs a store directory (-sd)"
    volume = mounts(nats).get(store)
    assert volume in compose.get("volumes", {}), f"{store} is not on a named volume"
    shared = {source for s in names.SERVICES for source in mounts(services[s]).values()}
    assert volume not in shared, "nats must have a volume of its own"


@pytest.mark.parametrize("name", names.SERVICES)
def test_container_runs_its_runtime_target(services: dict[str, Any], name: str) -> None:
    from libs.runtime.services import SERVICES as TARGETS

    args = argv(services[name])
    assert args[:3] == ["wolfpack", "run", name]
    assert name in TARGETS, f"wolfpack has no runnable service {name!r}"
    assert option(args, "--nats") == NATS_URL
    assert "nats" in services[name]["depends_on"]
    assert services[name]["restart"] == "unless-stopped"


def test_every_runtime_target_has_a_container(services: dict[str, Any]) -> None:
    from libs.runtime.services import SERVICES as TARGETS

    assert set(TARGETS) <= set(services)


@pytest.mark.parametrize("name", names.SERVICES)
def test_published_ports_are_the_service_ports(services: dict[str, Any], name: str) -> None:
    port = names.PORTS[name]
    expected = {(port, port, "tcp")}
    if name == "tftpd":
        expected.add((names.TFTP_PORT, names.TFTP_PORT, "udp"))
    if name == "bootd":  # its HTTPS twin under --tls
        expected.add((names.BOOTD_TLS_PORT, names.BOOTD_TLS_PORT, "tcp"))
    assert published(services[name]) == expected


def test_nats_is_published_for_subscribers_on_the_host(services: dict[str, Any]) -> None:
    assert published(services["nats"]) == {(names.NATS_PORT, names.NATS_PORT, "tcp")}


def test_ports_are_published_on_every_interface_by_default() -> None:
    for entry in re.findall(r'"(\$\{WOLFPACK_ADDRESS[^"]*)"', COMPOSE.read_text()):
        assert with_defaults(entry).startswith("0.0.0.0:"), entry


def test_wolfpack_services_share_one_data_volume_at_their_data_path(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    seen: set[tuple[str, str]] = set()
    for name in names.SERVICES:
        data = option(argv(services[name]), "--data")
        assert data is not None, f"{name} has no --data"
        volume = mounts(services[name]).get(data)
        assert volume, f"{name}: --data {data} is not a mounted volume"
        seen.add((volume, data))
    assert len(seen) == 1, f"services disagree on the data volume: {seen}"
    volume, _ = seen.pop()
    assert volume in compose["volumes"], f"{volume} is a host path, not a named volume"


@pytest.mark.parametrize("name", names.SERVICES)
def test_healthcheck_asks_healthz_on_the_service_port(services: dict[str, Any], name: str) -> None:
    check = services[name]["healthcheck"]["test"]
    text = check if isinstance(check, str) else " ".join(check)
    assert f":{names.PORTS[name]}/healthz" in text


def test_dockerignore_keeps_state_and_history_out_of_the_image() -> None:
    ignored = {
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {"var", ".git", "tests"} <= ignored
