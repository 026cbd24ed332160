"""A Docker engine for the deploy tests: the one that answers, else a dockerd this module
starts (as root; overlay2, else vfs) and stops again at the end. Under CI=true a missing
engine fails the tests (tests/needs.py), never skips them."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from tests.needs import need_command, need_root, unavailable

SOCKET: Final = Path("/var/run/docker.sock")
# Storage drivers to try in order: overlay2 where the backing filesystem allows it.
DRIVERS: Final = ("overlay2", "vfs")
STARTED_WITHIN: Final = 60.0


def docker_cli() -> str:
    """Debian's client (docker.io), the one docker-compose 1.29 ships beside."""
    for candidate in ("/usr/bin/docker", shutil.which("docker")):
        if candidate and Path(candidate).is_file():
            return candidate
    unavailable("docker is not installed (Debian package docker.io)")


def answers(docker: str) -> bool:
    done = subprocess.run([docker, "info"], capture_output=True, timeout=30, check=False)
    return done.returncode == 0


def _start(dockerd: str, driver: str, log: Path) -> subprocess.Popen[bytes] | None:
    """dockerd with `driver`, or None when it exits before it answers."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            # No iptables rules: this machine's firewall stays as it is; published ports
            # still work through docker-proxy.
            [dockerd, "--iptables=false", "--ip6tables=false", f"--storage-driver={driver}"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + STARTED_WITHIN
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return None
        if SOCKET.exists() and answers(docker_cli()):
            return process
        time.sleep(0.2)
    _stop(process)
    return None


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def engine(log: Path) -> Iterator[str]:
    """The docker client's path, with an engine answering it while the block runs."""
    docker = docker_cli()
    if answers(docker):
        yield docker
        return
    need_root("starting dockerd")
    dockerd = need_command("dockerd", "docker.io")
    need_command("containerd", "containerd")
    for driver in DRIVERS:
        process = _start(dockerd, driver, log)
        if process is not None:
            break
    else:
        unavailable(f"dockerd would not start (overlay2 nor vfs); its log: {log}")
    try:
        yield docker
    finally:
        _stop(process)
