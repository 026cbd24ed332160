"""Chroot directory sources: the tree copied whole into staging with `cp -a` (hardlinks,
devices, owners, modes, xattrs and times kept; reflinks where the file system has them)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from libs.common.errors import Invalid, NotFound, WolfpackError
from libs.common.proc.reap import communicate_or_kill
from services.builder.sources.progress import ProgressReporter
from services.builder.sources.tree import tree_size

STDERR_KEEP = 4096


def check_chroot(path: Path, *, forbidden: list[Path]) -> Path:
    """The real path of a chroot source; `/` itself and any directory holding one of
    `forbidden` (the data folder, the staging area) are refused."""
    if not path.exists():
        raise NotFound(f"{path}: no such directory", field="source")
    if not path.is_dir():
        raise Invalid(f"{path} is neither a directory nor a rootfs tarball", field="source")
    real = path.resolve()
    if real == Path("/"):
        raise Invalid("the host's / cannot be imported as an image", field="source")
    for inner in forbidden:
        if inner.resolve().is_relative_to(real):
            raise Invalid(f"{path} contains wolfpack's own {inner}; refused", field="source")
    return real


async def copy_chroot(source: Path, dest: Path, reporter: ProgressReporter) -> None:
    """Copy the tree at `source` to the new directory `dest`. One file system only: what
    is mounted inside a chroot (/proc, /dev while a shell runs) is not part of the image."""
    files, size = await asyncio.to_thread(tree_size, source)
    reporter.report("extract", 0, size, 0, force=True)
    process = await asyncio.create_subprocess_exec(
        "cp", "-a", "--reflink=auto", "--one-file-system", "--no-target-directory",
        str(source), str(dest),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await communicate_or_kill(process)
    if process.returncode != 0:
        lines = stderr[-STDERR_KEEP:].decode("utf-8", "replace").strip().splitlines()
        raise WolfpackError(f"copying {source} failed: {lines[-1] if lines else 'cp failed'}")
    reporter.report("extract", size, size, files, force=True)
