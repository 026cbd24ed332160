"""Whole-tree chores of an import: measuring a root file system and swapping it into place."""

from __future__ import annotations

import ctypes
import errno
import os
import stat
from pathlib import Path

from libs.common.fs.atomicfile import fsync_dir

AT_FDCWD = -100
RENAME_EXCHANGE = 2


def tree_size(root: Path) -> tuple[int, int]:
    """(entries that are not directories, bytes of regular files with each inode once)."""
    files = size = 0
    linked: set[int] = set()
    for folder, dirs, names in os.walk(root):
        links = [d for d in dirs if os.path.islink(os.path.join(folder, d))]
        for name in names + links:
            st = os.lstat(os.path.join(folder, name))
            files += 1
            if not stat.S_ISREG(st.st_mode):
                continue
            if st.st_nlink > 1:
                if st.st_ino in linked:
                    continue
                linked.add(st.st_ino)
            size += st.st_size
    return files, size


def swap_into_place(new: Path, dest: Path, old: Path) -> None:
    """Put the tree `new` at `dest`; what was at `dest` ends at `old` (the caller removes it).
    Exchanged in one renameat2(RENAME_EXCHANGE) where the kernel and libc have it, so a
    reader of `dest` sees the previous tree or the new one and never nothing; else two
    renames, the previous tree put back if the second fails."""
    if dest.exists() or dest.is_symlink():
        if _exchange(new, dest):
            os.rename(new, old)
        else:
            os.rename(dest, old)
            try:
                os.rename(new, dest)
            except OSError:
                os.rename(old, dest)
                raise
    else:
        os.rename(new, dest)
    fsync_dir(dest.parent)


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths atomically; False where renameat2 is missing or not supported."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(AT_FDCWD, os.fsencode(first), AT_FDCWD, os.fsencode(second), RENAME_EXCHANGE):
        code = ctypes.get_errno()
        if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
            return False
        raise OSError(code, os.strerror(code), str(second))
    return True
