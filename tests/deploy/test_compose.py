"""The compose files agree with the code, as Compose itself reads them (`docker-compose
config`: files merged, every variable at its default; no engine needed): with
docker-compose.override.yml, as `docker compose up` runs, every container runs a real service,
publishes that service's port on the design's port, shares the one data volume, and its health
check asks the right port; with docker-compose.host.yml, tftpd, bootd and dhcp are on the
host's network and reach NATS where it is published, with the token. The stacks themselves run
in the other tests of this folder (on other ports).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from libs.common import names
from libs.common.settings import Settings
from libs.common.units import parse_duration, parse_size
from tests.deploy.compose import BRIDGED, HOST_NETWORK, compose_cli

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
NATS_URL = f"nats://nats:{names.NATS_PORT}"
HOST_NATS_URL = f"nats://127.0.0.1:{names.NATS_PORT}"


def config(files: tuple[Path, ...], variables: Mapping[str, str] = {}) -> dict[str, Any]:
    """`docker-compose -f FILE... config` with no WOLFPACK_ or NATS_ variable set but
    `variables`, parsed; AssertionError with Compose's message if it refuses the files."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WOLFPACK_", "NATS_"))}
    flags = [arg for file in files for arg in ("-f", str(file))]
    done = subprocess.run(
        [compose_cli(), *flags, "config"],
        cwd=ROOT,
        env=env | dict(variables),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    data = yaml.safe_load(done.stdout)
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    for file in BRIDGED + HOST_NETWORK:
        raw = yaml.safe_load(file.read_text())
        assert "name" not in raw, f"{file.name}: Compose 1.29 rejects a top-level name:"
    return config(BRIDGED)


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


def test_ports_are_published_on_every_interface_by_default(services: dict[str, Any]) -> None:
    entries = [str(p) for service in services.values() for p in service.get("ports", [])]
    assert len(entries) == 8
    for entry in entries:
        assert entry.startswith("0.0.0.0:"), entry


@pytest.fixture(scope="module")
def host_services() -> dict[str, Any]:
    found = config(HOST_NETWORK, {"WOLFPACK_DHCP": "eth1"})["services"]
    assert isinstance(found, dict)
    return found


def test_the_host_override_puts_the_boot_path_on_the_hosts_network(
    host_services: dict[str, Any],
) -> None:
    from libs.runtime.cli import cli

    assert set(host_services) == {"nats-auth", "nats", "dhcp", *names.SERVICES}
    for name in ("bootd", "tftpd", "dhcp"):
        assert host_services[name]["network_mode"] == "host", name
        assert "ports" not in host_services[name], f"{name}: host networking refuses ports"
    for name in ("bootd", "tftpd"):
        assert option(argv(host_services[name]), "--nats") == HOST_NATS_URL
    # ... and present the token there: nats-auth records it as an alias of NATS's URL.
    auth = argv(host_services["nats-auth"])
    assert option(auth, "--url") == NATS_URL and option(auth, "--also") == HOST_NATS_URL
    assert (names.NATS_PORT, names.NATS_PORT, "tcp") in published(host_services["nats"])
    dhcp = host_services["dhcp"]
    assert argv(dhcp)[:2] == ["wolfpack", "dhcp"] and "dhcp" in cli.commands
    assert dhcp["environment"]["WOLFPACK_DHCP"] == "eth1" and dhcp["cap_add"] == ["NET_ADMIN"]
    assert mounts(dhcp) == mounts(host_services["overlayd"])
    # overlayd reads the address and DHCP settings dhcp writes, as it starts.
    assert host_services["overlayd"]["depends_on"]["dhcp"]["condition"] == "service_healthy"
    assert "nats" in host_services["overlayd"]["depends_on"]
    for name in ("registry", "builder", "overlayd"):
        assert "network_mode" not in host_services[name] and published(host_services[name])


def test_the_host_override_wants_the_cluster_interface_named(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WOLFPACK_")}
    flags = [arg for file in HOST_NETWORK for arg in ("-f", str(file))]
    done = subprocess.run(
        [compose_cli(), *flags, "config"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode != 0
    assert "set WOLFPACK_DHCP to the cluster network interface" in done.stderr


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


def test_every_service_sets_the_stream_retention_with_up_s_defaults(
    services: dict[str, Any],
) -> None:
    for name in names.SERVICES:
        env = services[name].get("environment") or {}
        age, size = env.get("WOLFPACK_EVENTS_MAX_AGE"), env.get("WOLFPACK_EVENTS_MAX_BYTES")
        assert (age, size) == ("7d", "1GiB"), name
    defaults = Settings()
    assert parse_duration("7d") == defaults.events_max_age
    assert parse_size("1GiB") == defaults.events_max_bytes


def test_the_stream_retention_comes_from_the_variables_in_either_network_mode() -> None:
    variables = {
        "WOLFPACK_EVENTS_MAX_AGE": "2d",
        "WOLFPACK_EVENTS_MAX_BYTES": "10GiB",
        "WOLFPACK_DHCP": "eth1",
    }
    for files in (BRIDGED, HOST_NETWORK):
        found = config(files, variables)["services"]
        for name in names.SERVICES:
            env = found[name]["environment"]
            assert env["WOLFPACK_EVENTS_MAX_AGE"] == "2d", (files, name)
            assert env["WOLFPACK_EVENTS_MAX_BYTES"] == "10GiB", (files, name)


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
