"""What `include_host(path)` and `include_image(path)` may read, and how.

include_host reads only what an allow-list names (files, or folders and what is below them;
by default the few host files the shipped overlays and most sites need, DEFAULT_INCLUDE_HOST
of libs/common/site/config.py, and DATA/overlayd.yaml `include_host` replaces it), never the
API token: the path is resolved with every symlink and `..` first, and the result must still
be an allowed file or inside an allowed folder (whose own links are resolved the same way).

include_image reads inside the node's image rootfs, resolving symlinks the way a chroot sees
them (an absolute link starts again at the image's root), so nothing outside the rootfs is
ever reached. Both read regular files only, at most MAX_INCLUDE bytes, and keep what they
read for the rest of the wave (10,000 nodes reading one file read it once).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from libs.common import names
from libs.common.fs.rootpath import LinkLoop, resolve_in_root
from libs.common.site.config import DEFAULT_INCLUDE_HOST

MAX_INCLUDE: Final = 16 << 20
_MISSING: Final = object()


class IncludeError(Exception):
    """A helper refused or failed; the message names the path and why."""


# What the shipped overlays read (syncuser: passwd, group) and what sites commonly add; no
# secret among them (not /etc/shadow, no private key, nothing of DATA).
ALLOW_LIST_HINT: Final = "DATA/overlayd.yaml `include_host` lists what templates may read"


def default_include_host() -> list[Path]:
    return [Path(path) for path in DEFAULT_INCLUDE_HOST]


class HostFiles:
    """include_host(path): a host file the allow-list `roots` names (files or folders)."""

    def __init__(self, roots: Sequence[Path], denied: Sequence[Path] = ()) -> None:
        self.roots = [Path(os.path.realpath(root)) for root in roots]
        self.denied = {Path(os.path.realpath(path)) for path in denied}
        self._cache: dict[str, str | IncludeError] = {}

    @classmethod
    def for_data_dir(cls, data_dir: Path, roots: Sequence[Path] | None = None) -> HostFiles:
        chosen = default_include_host() if roots is None else roots
        return cls(chosen, denied=[Path(data_dir) / names.TOKEN_FILE])

    def read(self, path: str, default: str | None = None) -> str:
        found = self._cache.get(path)
        if found is None:
            try:
                found = self._read(path)
            except IncludeError as err:
                found = err
            self._cache[path] = found
        if isinstance(found, IncludeError):
            if default is not None and isinstance(found.__cause__, FileNotFoundError):
                return default
            raise found
        return found

    def _read(self, path: str) -> str:
        if not isinstance(path, str) or not path.startswith("/") or "\x00" in path:
            raise IncludeError(f"include_host({path!r}): give an absolute path")
        resolved = Path(os.path.realpath(path))
        if resolved in self.denied or not any(resolved.is_relative_to(r) for r in self.roots):
            allowed = ", ".join(str(r) for r in self.roots)
            raise IncludeError(
                f"include_host({path!r}): {resolved} is outside the allowed roots ({allowed}); "
                f"{ALLOW_LIST_HINT}"
            )
        return _read_text(resolved, f"include_host({path!r})")


class ImageFiles:
    """include_image(path): a file of an image's rootfs, `images_dir/<image>/rootfs`."""

    def __init__(self, images_dir: Path) -> None:
        self.images_dir = Path(images_dir)
        self._cache: dict[tuple[str, str], str | IncludeError] = {}

    def read(self, image: str | None, path: str, default: str | None = None) -> str:
        key = (image or "", path)
        found = self._cache.get(key)
        if found is None:
            try:
                found = self._read(image, path)
            except IncludeError as err:
                found = err
            self._cache[key] = found
        if isinstance(found, IncludeError):
            if default is not None and isinstance(found.__cause__, FileNotFoundError):
                return default
            raise found
        return found

    def _read(self, image: str | None, path: str) -> str:
        what = f"include_image({path!r})"
        if not image:
            raise IncludeError(f"{what}: the node has no image")
        if "/" in image or image in (".", "..") or "\x00" in image:
            raise IncludeError(f"{what}: {image!r} is not an image name")
        if not isinstance(path, str) or "\x00" in path:
            raise IncludeError(f"{what}: not a path")
        root = self.images_dir / image / "rootfs"
        if not root.is_dir():
            raise IncludeError(f"{what}: image {image!r} has no rootfs at {root}")
        return _read_text(_image_path(root, path, what), what)


def _image_path(root: Path, path: str, what: str) -> Path:
    """`path` inside `root` as a chroot at `root` would resolve it; never leaves `root`."""
    try:
        return resolve_in_root(root, path)
    except (FileNotFoundError, NotADirectoryError) as err:
        raise IncludeError(f"{what}: no such file in the image") from err
    except LinkLoop:
        raise IncludeError(f"{what}: too many levels of symbolic links") from None


def _read_text(path: Path, what: str) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError as err:
        raise IncludeError(f"{what}: no such file") from err
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise IncludeError(f"{what}: a symbolic link; refused") from err
        raise IncludeError(f"{what}: {err.strerror}") from err
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise IncludeError(f"{what}: not a regular file")
        if info.st_size > MAX_INCLUDE:
            raise IncludeError(f"{what}: {info.st_size} bytes; at most {MAX_INCLUDE} are read")
        with os.fdopen(os.dup(fd), "rb") as source:
            data = source.read(MAX_INCLUDE + 1)
    finally:
        os.close(fd)
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise IncludeError(f"{what}: not UTF-8 text") from None
