"""Where the builder keeps things under DATA: one folder per image (its rootfs, its chunk
index, its registry credentials) and a staging area on the same file system for jobs."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Final

IMAGES_DIR: Final = "images"
STAGING_DIR: Final = ".staging"
ROOTFS: Final = "rootfs"
CHUNK_INDEX: Final = "chunks.json"
# `user:password` for the registry an image came from (not in KV: every NATS client reads KV).
CREDS: Final = "creds"


class Layout:
    """Paths of DATA/images (made absolute: wolfctl is told the rootfs path to chroot into)."""

    def __init__(self, data_dir: Path) -> None:
        self.data = Path(data_dir).absolute()
        self.images = self.data / IMAGES_DIR
        self.staging = self.images / STAGING_DIR

    def image_dir(self, name: str) -> Path:
        return self.images / name

    def rootfs(self, name: str) -> Path:
        return self.image_dir(name) / ROOTFS

    def chunk_index(self, name: str) -> Path:
        return self.image_dir(name) / CHUNK_INDEX

    def prepare(self) -> None:
        """Make the folders; drop what jobs cut short by a crash left in staging."""
        self.staging.mkdir(parents=True, exist_ok=True)
        for leftover in self.staging.iterdir():
            remove_tree(leftover)

    def job_dir(self, job_id: str) -> Path:
        path = self.staging / f"job-{job_id}"
        path.mkdir(parents=True)
        return path

    def read_creds(self, name: str) -> str | None:
        try:
            return (self.image_dir(name) / CREDS).read_text().strip() or None
        except FileNotFoundError:
            return None

    def write_creds(self, name: str, creds: str | None) -> None:
        """Keep `creds` for later pulls of this image (mode 0600); None forgets them."""
        path = self.image_dir(name) / CREDS
        if creds is None:
            path.unlink(missing_ok=True)
            return
        fd, temp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)  # mode 0600
        try:
            with os.fdopen(fd, "w") as out:
                out.write(creds + "\n")
            os.replace(temp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)


def remove_tree(path: Path) -> None:
    """Remove a file or a whole tree (what cannot go is left for the next start-up)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
