"""Setting a tar entry's owner, mode, xattrs and times on what was just created."""

from __future__ import annotations

import os
import tarfile

from libs.common.errors import WolfpackError

XATTR_PREFIX = "SCHILY.xattr."  # PAX records as GNU tar, bsdtar and Go's archive/tar write them


def set_metadata(
    where: int,
    base: str | None,
    member: tarfile.TarInfo,
    *,
    as_root: bool,
    is_link: bool = False,
    is_root: bool = False,
) -> None:
    """Owner (only as root), then mode (chown clears setuid bits), then xattrs (chown clears
    security.capability), then times. `base` is a name in directory fd `where`, never
    followed; with `base` None, `where` is the file's own fd."""
    at = {} if base is None else {"dir_fd": where, "follow_symlinks": False}
    path: int | str = where if base is None else base
    if as_root:
        os.chown(path, member.uid, member.gid, **at)  # type: ignore[arg-type]
    if not is_link:
        # Not a symlink: nothing to follow, and Linux has no lchmod.
        mode_at = {} if base is None else {"dir_fd": where}
        os.chmod(path, member.mode & 0o7777, **mode_at)  # type: ignore[arg-type]
    for key, value in member.pax_headers.items():
        if key.startswith(XATTR_PREFIX):
            _set_xattr(where, base, key.removeprefix(XATTR_PREFIX), value, member.name)
    if not is_root:
        os.utime(path, (member.mtime, member.mtime), **at)  # type: ignore[arg-type]


def _set_xattr(where: int, base: str | None, key: str, value: str, name: str) -> None:
    # The /proc path pins the parent directory by its fd; the last component is not followed.
    target: int | str = where if base is None else f"/proc/self/fd/{where}/{base}"
    data = value.encode("utf-8", "surrogateescape")  # tarfile decodes PAX values this way
    try:
        os.setxattr(target, key, data, follow_symlinks=base is None)
    except OSError as err:
        raise WolfpackError(
            f"entry {name!r}: cannot set xattr {key}: {err.strerror}", field="source"
        ) from None
