"""One docker-compose project of the repository's docker-compose.yml, driven as a site drives it
(Debian's docker-compose 1.29, `-p PROJECT`): up, down, exec, logs, health, published ports.

The project's name is the test's own, so everything it makes (containers, the default network,
volumes) carries that prefix and `down -v` at the end removes exactly that.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from tests.cli import REPO
from tests.needs import need_command, unavailable
from tests.waiting import NeverHappened

COMPOSE_FILE: Final = REPO / "docker-compose.yml"
# What `docker compose up` reads in the repository: the stack on the project's bridge network.
BRIDGED: Final = (COMPOSE_FILE, REPO / "docker-compose.override.yml")
# Booting real nodes: tftpd, bootd and dhcp on the host's network.
HOST_NETWORK: Final = (COMPOSE_FILE, REPO / "docker-compose.host.yml")
DATA: Final = "/var/lib/wolfpack"
# The containers that run a wolfpack service and NATS (nats-auth runs once and exits).
RUNNING: Final = ("nats", "registry", "builder", "overlayd", "bootd", "tftpd")
# Ports published in the tests: any free one on loopback (docker-compose.yml's variables).
PORT_VARIABLES: Final = (
    "WOLFPACK_REGISTRY_PORT",
    "WOLFPACK_BUILDER_PORT",
    "WOLFPACK_OVERLAYD_PORT",
    "WOLFPACK_BOOTD_PORT",
    "WOLFPACK_BOOTD_TLS_PORT",
    "WOLFPACK_TFTP_PORT",
    "WOLFPACK_TFTPD_PORT",
    "WOLFPACK_NATS_PORT",
)


class ComposeFailed(AssertionError):
    """docker-compose (or docker) exited non-zero; the message has its output."""


def compose_cli() -> str:
    return need_command("docker-compose", "docker-compose")


@dataclass
class Project:
    name: str
    docker: str
    image: str
    import_dir: Path
    # Extra variables for docker-compose.yml (NATS_IMAGE, ...).
    variables: Mapping[str, str] = field(default_factory=dict)
    files: tuple[Path, ...] = BRIDGED
    # The long-running containers that must all be healthy.
    running: tuple[str, ...] = RUNNING

    def environment(self) -> dict[str, str]:
        ports = dict.fromkeys(PORT_VARIABLES, "")
        return (
            dict(os.environ)
            | ports
            | {
                "WOLFPACK_IMAGE": self.image,
                "WOLFPACK_ADDRESS": "127.0.0.1",
                "WOLFPACK_IMPORT": str(self.import_dir),
            }
            | dict(self.variables)
        )

    def compose(
        self, *args: str, check: bool = True, within: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """`docker-compose -p NAME -f FILE... ARGS`, its output captured."""
        files = [arg for file in self.files for arg in ("-f", str(file))]
        done = subprocess.run(
            [compose_cli(), "-p", self.name, *files, "--ansi", "never", *args],
            cwd=REPO,
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=within,
            check=False,
        )
        if check and done.returncode != 0:
            raise ComposeFailed(
                f"docker-compose {' '.join(args)}: exit {done.returncode}\n"
                f"{done.stdout[-3000:]}{done.stderr[-3000:]}"
            )
        return done

    def docker_run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [self.docker, *args], capture_output=True, text=True, timeout=120, check=False
        )
        if check and done.returncode != 0:
            raise ComposeFailed(f"docker {' '.join(args)}: {done.stderr[-3000:]}")
        return done

    def exec(
        self, service: str, *argv: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.compose("exec", "-T", service, *argv, check=check, within=600)

    def read(self, service: str, path: str) -> str:
        return self.exec(service, "cat", path).stdout

    def container(self, service: str) -> str:
        """The id of `service`'s container (the first, when scaled)."""
        ids = self.compose("ps", "-q", service).stdout.split()
        if not ids:
            raise ComposeFailed(f"{service} has no container in project {self.name}")
        return ids[0]

    def inspect(self, service: str) -> dict[str, object]:
        found = json.loads(self.docker_run("inspect", self.container(service)).stdout)
        assert isinstance(found, list) and found
        first = found[0]
        assert isinstance(first, dict)
        return first

    def health(self, service: str) -> str:
        """healthy, unhealthy, starting; `none` for a container without a health check."""
        state = self.inspect(service)["State"]
        assert isinstance(state, dict)
        health = state.get("Health")
        return str(health["Status"]) if isinstance(health, dict) else "none"

    def wait_healthy(self, services: tuple[str, ...] = (), within: float = 180) -> float:
        """Seconds until every one of `services` (default: all that run) is healthy;
        NeverHappened naming the laggards."""
        services = services or self.running
        started = time.monotonic()
        deadline = started + within
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            states = {name: self.health(name) for name in services}
            if all(state == "healthy" for state in states.values()):
                return time.monotonic() - started
            time.sleep(0.5)
        raise NeverHappened(f"not all healthy within {within:g} s: {states}\n{self.logs()}")

    def port(self, service: str, port: int, protocol: str = "tcp") -> int:
        """The host port `service`'s `port` is published on."""
        shown = self.compose("port", "--protocol", protocol, service, str(port)).stdout.strip()
        if not shown:
            raise ComposeFailed(f"{service} publishes no {port}/{protocol}")
        return int(shown.rsplit(":", 1)[1])

    def url(self, service: str, port: int) -> str:
        return f"http://127.0.0.1:{self.port(service, port)}"

    def logs(self, *services: str, tail: int = 60) -> str:
        done = self.compose("logs", "--no-color", f"--tail={tail}", *services, check=False)
        return done.stdout + done.stderr

    def volume(self, name: str) -> str:
        """The engine's name of the project's volume `name` (the project prefix added)."""
        return f"{self.name}_{name}"

    def volumes(self) -> set[str]:
        listed = self.docker_run(
            "volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={self.name}"
        ).stdout.split()
        return set(listed)

    def down(self, *args: str) -> None:
        self.compose("down", "--remove-orphans", *args)


def need_compose_file() -> None:
    for file in BRIDGED + HOST_NETWORK:
        if not file.is_file():
            unavailable(f"{file} is missing")
