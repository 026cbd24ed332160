"""Where the builder keeps things under DATA: one folder per image (its rootfs, its chunk
index, its registry credentials), a staging area on the same file system for jobs, and the
registry credentials of accepted requests until their job ends."""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

from libs.common.fs.atomicfile import write_atomic
from libs.common.store.image_dirs import (
    CHUNK_INDEX,
    CREDS,
    IMAGES_DIR,
    REQUESTS_DIR,
    ROOTFS,
    STAGING_DIR,
)


class Layout:
    """Paths of DATA/images (made absolute: wolfctl is told the rootfs path to chroot into)."""

    def __init__(self, data_dir: Path) -> None:
        self.data = Path(data_dir).absolute()
        self.images = self.data / IMAGES_DIR
        self.staging = self.images / STAGING_DIR
        self.requests = self.images / REQUESTS_DIR

    def image_dir(self, name: str) -> Path:
        return self.images / name

    def rootfs(self, name: str) -> Path:
        return self.image_dir(name) / ROOTFS

    def chunk_index(self, name: str) -> Path:
        return self.image_dir(name) / CHUNK_INDEX

    def prepare(self) -> None:
        """Make the folders; drop what jobs cut short by a crash left in staging (their
        requests are handed over again and start afresh)."""
        self.staging.mkdir(parents=True, exist_ok=True)
        self.requests.mkdir(exist_ok=True)
        for leftover in self.staging.iterdir():
            remove_tree(leftover)

    def job_dir(self, job_id: str) -> Path:
        """A fresh folder for one run of a job (a job run again gets another)."""
        path = self.staging / f"job-{job_id}-{secrets.token_hex(3)}"
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
        _write_private(path, creds)

    def request_creds(self, job_id: str) -> Path:
        """Where the credentials of an accepted request wait for its job (not on the stream:
        every NATS client reads that)."""
        return self.requests / f"{job_id}.creds"

    def keep_request_creds(self, job_id: str, creds: str) -> None:
        self.requests.mkdir(parents=True, exist_ok=True)
        _write_private(self.request_creds(job_id), creds)

    def read_request_creds(self, job_id: str) -> str | None:
        try:
            return self.request_creds(job_id).read_text().strip() or None
        except FileNotFoundError:
            return None

    def forget_request_creds(self, job_id: str) -> None:
        self.request_creds(job_id).unlink(missing_ok=True)


def _write_private(path: Path, text: str) -> None:
    """Write `text` (and a newline) to `path` whole, mode 0600."""
    write_atomic(path, (text + "\n").encode())


def remove_tree(path: Path) -> None:
    """Remove a file or a whole tree (what cannot go is left for the next start-up)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
