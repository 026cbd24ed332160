"""The images the deploy tests run: a Debian base made here from Debian packages (Docker Hub's
python image cannot be pulled on a machine without it), and the wolfpack image built on it from
the working tree, installed from wheels made on the host as an air-gapped site does.

The base is made once per machine: tagged in the engine, and kept as a tarball under
~/.cache/wolfpack-test/ so that a fresh engine imports it instead of running debootstrap again.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from tests.cli import REPO
from tests.needs import need_command, need_root

SUITE: Final = "bookworm"
BASE_TAG: Final = f"wolfpack-test/base:{SUITE}"
CACHE: Final = Path.home() / ".cache" / "wolfpack-test"
# debootstrap's minimal variant plus an interpreter and what makes a venv in it.
BASE_PACKAGES: Final = ("python3", "python3-venv")
# What a container base leaves out (globs below its root).
SLIMMED: Final = (
    "var/lib/apt/lists/*[!k]",  # all but the `lock` file
    "var/cache/apt/*.bin",
    "var/cache/apt/archives/*.deb",
    "usr/share/doc/*",
    "usr/share/man/*",
    "usr/share/info/*",
    "usr/share/locale/*",
)
# What the wolfpack image's build context needs (deploy/Dockerfile copies these).
CONTEXT: Final = ("pyproject.toml", "README.md", "libs", "services", "deploy/Dockerfile")


def has_image(docker: str, tag: str) -> bool:
    done = subprocess.run([docker, "image", "inspect", tag], capture_output=True, check=False)
    return done.returncode == 0


def image_size(docker: str, tag: str) -> int:
    done = subprocess.run(
        [docker, "image", "inspect", "-f", "{{.Size}}", tag],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


def _mirror() -> str:
    """The Debian mirror this machine's apt uses (deb822 or one-line sources)."""
    for source in sorted(Path("/etc/apt").glob("sources.list*")) + sorted(
        Path("/etc/apt/sources.list.d").glob("*")
    ):
        if not source.is_file():
            continue
        for line in source.read_text().splitlines():
            words = line.split()
            if line.startswith("URIs:") and "security" not in line:
                return words[1]
            if words[:1] == ["deb"] and "security" not in line:
                return next(w for w in words[1:] if "://" in w)
    return "http://deb.debian.org/debian"


def _debootstrap(tarball: Path) -> None:
    need_root("debootstrap")
    debootstrap = need_command("debootstrap", "debootstrap")
    with tempfile.TemporaryDirectory(prefix="wolfpack-base-") as folder:
        root = Path(folder) / "root"
        subprocess.run(
            [
                debootstrap,
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                SUITE,
                str(root),
                _mirror(),
            ],
            check=True,
            capture_output=True,
        )
        # Slim as Debian's own container images: no package lists, caches or documentation.
        for leftover in SLIMMED:
            for path in root.glob(leftover):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        partial = tarball.with_suffix(".partial")
        subprocess.run(
            ["tar", "--numeric-owner", "-C", str(root), "-cf", str(partial), "."], check=True
        )
        partial.rename(tarball)


def base_image(docker: str) -> str:
    """BASE_TAG in the engine: already there, imported from the cached tarball, or made."""
    if has_image(docker, BASE_TAG):
        return BASE_TAG
    CACHE.mkdir(parents=True, exist_ok=True)
    tarball = CACHE / f"base-{SUITE}.tar"
    if not tarball.is_file():
        _debootstrap(tarball)
    subprocess.run(
        [docker, "import", "--change", 'CMD ["/bin/bash"]', str(tarball), BASE_TAG],
        check=True,
        capture_output=True,
    )
    return BASE_TAG


@dataclass(frozen=True)
class Built:
    tag: str
    seconds: float
    size: int


def build_context(into: Path) -> Path:
    """A build context: what deploy/Dockerfile copies, from the working tree, and the wheels of
    wolfpack and its dependencies in deploy/wheels."""
    for relative in CONTEXT:
        source, target = REPO / relative, into / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, target)
    shutil.copy2(REPO / ".dockerignore", into / ".dockerignore")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "-w", str(into / "deploy/wheels"), "."],
        cwd=into,
        check=True,
        capture_output=True,
    )
    return into


def image_id(docker: str, tag: str) -> str | None:
    done = subprocess.run(
        [docker, "image", "inspect", "-f", "{{.Id}}", tag],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() if done.returncode == 0 else None


def build_wolfpack(docker: str, tag: str, base: str) -> Built:
    """`tag`: deploy/Dockerfile on `base`, wolfpack from wheels (no index inside the build).
    The image `tag` named before, and the build stage's leftovers, are removed: a run of
    the tests leaves one image behind, not one more each time."""
    with tempfile.TemporaryDirectory(prefix="wolfpack-context-") as folder:
        return build_from(docker, tag, base, build_context(Path(folder)))


def build_from(
    docker: str, tag: str, base: str, context: Path, *, cache: bool = True, keep: bool = False
) -> Built:
    """`tag` built from `context` (build_context); `cache` False: no layer reused. The build
    stage's image is pruned unless `keep` (the next build of the same context reuses it)."""
    before = image_id(docker, tag)
    started = time.monotonic()
    subprocess.run(
        [
            docker,
            "build",
            # apt inside the build reaches the mirror only on the host's network.
            "--network",
            "host",
            *([] if cache else ["--no-cache"]),
            "--build-arg",
            f"BASE={base}",
            "--build-arg",
            "WOLFPACK_FROM=wheels",
            "-f",
            str(context / "deploy/Dockerfile"),
            "-t",
            tag,
            str(context),
        ],
        check=True,
        capture_output=True,
    )
    seconds = time.monotonic() - started
    if before is not None and before != image_id(docker, tag):
        subprocess.run([docker, "rmi", before], capture_output=True, check=False)
    if not keep:
        prune = [docker, "image", "prune", "-f", "--filter", "label=org.wolfpack.stage=build"]
        subprocess.run(prune, capture_output=True, check=False)
    return Built(tag, seconds, image_size(docker, tag))
