"""What a test needs of the machine (root, a command, a tmpfs), checked one way. Missing, the
test is skipped on a developer's machine and fails under CI=true, where a green run must mean
the real thing was exercised: scripts/test installs every package named here."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

# Where Debian puts the tools of root (ip, dnsmasq), outside a user's PATH.
SBIN = ("/usr/sbin", "/sbin")


def under_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str) -> NoReturn:
    """This test cannot run here, because of `reason`: a skip, or under CI=true a failure."""
    if under_ci():
        pytest.fail(f"CI=true and {reason}")
    pytest.skip(reason)


def need_root(doing: str) -> None:
    """Unavailable unless this process is root; `doing` says what needs it."""
    if os.geteuid() != 0:
        unavailable(f"{doing} needs root")


def need_command(name: str, package: str) -> str:
    """The path of command `name` (root's sbin folders searched too), or unavailable, naming
    the Debian `package` that has it."""
    found = shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", os.defpath), *SBIN]))
    if found is None:
        unavailable(f"{name} is not installed (Debian package {package})")
    return found


@contextlib.contextmanager
def tmpfs(folder: Path, options: str) -> Iterator[Path]:
    """`folder` (made if missing) as a tmpfs mounted with `options` (`size=1m`,
    `nr_inodes=16`): a small disk that fills up for real. Unmounted at the end."""
    need_root("mounting a tmpfs")
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        unavailable(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)
