"""A directory tree that can only be written inside: every path is walked one component at a
time with openat(O_NOFOLLOW) from the root's file descriptor, so no write ever leaves it.

Symlinks met among the parent components are resolved the way a chroot would see them
(absolute targets start again at the root, `..` stops at the root), so an image whose
/lib -> usr/lib still extracts; but no directory is ever created through a symlink: an entry
below a symlink whose target is not a directory in the image is refused.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections import OrderedDict

from libs.common.errors import Invalid

MAX_SYMLINKS = 40  # as the kernel allows in one path walk
CACHE_SIZE = 32
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

Parts = tuple[str, ...]


def split_entry(name: str, *, what: str = "entry") -> Parts:
    """An archive path as components inside the root; absolute, escaping or NUL-bearing
    paths are refused. `a/../b` is cleaned lexically to `b`; `./` and `` mean the root."""
    if "\x00" in name:
        raise Invalid(f"{what} {name!r} has a NUL byte in its name", field="source")
    if name.startswith("/"):
        raise Invalid(f"{what} {name!r} is an absolute path; refused", field="source")
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise Invalid(
                    f"{what} {name!r} escapes the image root ('..'); refused", field="source"
                )
            parts.pop()
        else:
            parts.append(part)
    return tuple(parts)


class SafeRoot:
    """The root of a tree being written; owns a small cache of resolved directory fds.

    fds handed out by `directory` stay valid until `next_entry` is called (removals retire
    the cache, since a removed directory or symlink may be part of a cached path).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.fd = os.open(self.path, _DIR_FLAGS)
        self._cache: OrderedDict[Parts, int] = OrderedDict()
        self._retired: list[int] = []

    def close(self) -> None:
        self._retire()
        self.next_entry()
        os.close(self.fd)

    def __enter__(self) -> SafeRoot:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def next_entry(self) -> None:
        """Close the fds retired while handling the previous entry."""
        for fd in self._retired:
            os.close(fd)
        self._retired.clear()

    def directory(self, parts: Parts, *, create: bool, entry: str) -> int | None:
        """The fd of directory `parts` (None if missing and not `create`); borrowed."""
        if not parts:
            return self.fd
        cached = self._cache.get(parts)
        if cached is not None:
            self._cache.move_to_end(parts)
            return cached
        fd = self._walk(parts, create=create, entry=entry)
        if fd is None:
            return None
        self._cache[parts] = fd
        if len(self._cache) > CACHE_SIZE:
            self._retired.append(self._cache.popitem(last=False)[1])
        return fd

    def remove(self, parent: int, name: str) -> None:
        """Remove `name` in `parent` (a whole tree if a directory), never following links."""
        mode = os.lstat(name, dir_fd=parent).st_mode
        if stat.S_ISDIR(mode):
            shutil.rmtree(name, dir_fd=parent)
        else:
            os.unlink(name, dir_fd=parent)
        if stat.S_ISDIR(mode) or stat.S_ISLNK(mode):
            self._retire()

    def _retire(self) -> None:
        self._retired.extend(self._cache.values())
        self._cache.clear()

    def _walk(self, parts: Parts, *, create: bool, entry: str) -> int | None:
        stack = [os.dup(self.fd)]
        # Components still to walk, last first; each remembers the symlink it came from.
        pending: list[tuple[str, str | None]] = [(part, None) for part in reversed(parts)]
        links = 0
        try:
            while pending:
                name, via = pending.pop()
                if name in ("", "."):
                    continue
                if name == "..":
                    if len(stack) > 1:
                        os.close(stack.pop())
                    continue
                try:
                    stack.append(os.open(name, _DIR_FLAGS, dir_fd=stack[-1]))
                    continue
                except FileNotFoundError:
                    if not create:
                        return None
                    if via is not None:
                        raise Invalid(
                            f"entry {entry!r}: {via} does not lead to a directory in the image;"
                            " refused (no directory is created through a symlink)",
                            field="source",
                        ) from None
                    os.mkdir(name, 0o755, dir_fd=stack[-1])
                    stack.append(os.open(name, _DIR_FLAGS, dir_fd=stack[-1]))
                    continue
                except OSError as err:
                    if err.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                if not stat.S_ISLNK(os.lstat(name, dir_fd=stack[-1]).st_mode):
                    raise Invalid(
                        f"entry {entry!r}: {name!r} on its path is not a directory",
                        field="source",
                    )
                links += 1
                if links > MAX_SYMLINKS:
                    raise Invalid(f"entry {entry!r}: too many levels of symlinks", field="source")
                target = os.readlink(name, dir_fd=stack[-1])
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                label = via or f"symlink {name!r} -> {target!r}"
                pending.extend((part, label) for part in reversed(target.split("/")))
            return stack.pop()
        finally:
            for fd in stack:
                os.close(fd)
