"""Applying tar layers to a root file system, safely.

Written here rather than left to umoci or tar so that every hostile entry (absolute path,
`..`, a hardlink leaving the root, a write through a symlink, a device where none may be, a
NUL in a name, a decompression bomb) gets our clear error naming the entry, and nothing is
ever written outside the root: all writes go through SafeRoot's openat walk.

OCI whiteouts apply to image layers only; a plain rootfs tarball is one layer without
whiteout semantics (its `.wh.*` files are kept as ordinary files).
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from pathlib import Path

import msgspec

from libs.common.errors import Invalid, WolfpackError
from services.builder.sources.metadata import set_metadata
from services.builder.sources.progress import ProgressReporter
from services.builder.sources.saferoot import Parts, SafeRoot, split_entry
from services.builder.sources.stream import CORRUPT_ERRORS, Budget, TarStream

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
CHUNK = 1 << 20


class LayerBlob(msgspec.Struct, frozen=True):
    """One layer to apply: its file, a name for messages, the diff_id its config expects."""

    path: Path
    label: str
    size: int
    diff_id: str | None = None


class ApplyStats(msgspec.Struct):
    entries: int = 0
    bytes_read: int = 0


def apply_layers(
    root_dir: Path,
    layers: list[LayerBlob],
    *,
    whiteouts: bool,
    allow_devices: bool,
    budget: Budget,
    reporter: ProgressReporter,
) -> ApplyStats:
    """Apply `layers` in order to `root_dir` (blocking; run it in a thread)."""
    stats = ApplyStats()
    total = sum(layer.size for layer in layers)
    reporter.report("extract", 0, total, force=True)
    with SafeRoot(root_dir) as root:
        for layer in layers:
            applier = _LayerApplier(root, layer, whiteouts, allow_devices, budget, reporter)
            applier.run(stats, total)
            stats.bytes_read += layer.size
    reporter.report("extract", stats.bytes_read, total, stats.entries, force=True)
    return stats


class _LayerApplier:
    def __init__(
        self,
        root: SafeRoot,
        layer: LayerBlob,
        whiteouts: bool,
        allow_devices: bool,
        budget: Budget,
        reporter: ProgressReporter,
    ) -> None:
        self.root = root
        self.layer = layer
        self.whiteouts = whiteouts
        self.allow_devices = allow_devices
        self.budget = budget
        self.reporter = reporter
        self.as_root = os.geteuid() == 0
        # Paths this layer wrote, with their ancestors: whiteouts only hide lower layers.
        self.written: set[Parts] = set()
        self.directories: list[tuple[Parts, float]] = []
        # The root's time: its own entry's if the layer has one ("./"), else the newest entry's.
        # Never the extraction time: the same source must give the same image digest.
        self.root_mtime: float | None = None
        self.newest = 0.0

    def run(self, stats: ApplyStats, total: int) -> None:
        label = self.layer.label
        with open(self.layer.path, "rb") as raw:
            stream = TarStream(raw, self.budget, hash_diff=self.layer.diff_id is not None)
            try:
                with tarfile.open(fileobj=stream, mode="r|") as archive:  # type: ignore[call-overload]
                    while (member := archive.next()) is not None:
                        archive.members.clear()  # streaming: keep no index of members
                        self.root.next_entry()
                        self._apply(member, archive)
                        stats.entries += 1
                        done = stats.bytes_read + raw.tell()
                        self.reporter.report("extract", done, total, stats.entries)
                    if not stream.ended_cleanly(archive.offset):
                        raise Invalid(f"{label}: truncated tar (no end marker)", field="source")
                stream.drain()
            except CORRUPT_ERRORS as err:
                raise Invalid(
                    f"{label}: corrupt or truncated archive: {err}", field="source"
                ) from None
        if self.layer.diff_id is not None and stream.diff_id() != self.layer.diff_id:
            raise Invalid(
                f"{label} unpacks to {stream.diff_id()}, but the image config says"
                f" {self.layer.diff_id}",
                field="source",
            )
        self._set_directory_times()

    # -- one entry --

    def _apply(self, member: tarfile.TarInfo, archive: tarfile.TarFile) -> None:
        name = member.name
        parts = split_entry(name)
        self.newest = max(self.newest, float(member.mtime))
        if not parts:
            if not member.isdir():
                raise Invalid(f"{self.layer.label}: entry {name!r} (the root) is not a directory")
            set_metadata(self.root.fd, ".", member, as_root=self.as_root, is_root=True)
            self.root_mtime = float(member.mtime)
            return
        base = parts[-1]
        if self.whiteouts and base.startswith(WHITEOUT):
            self._whiteout(parts, name)
            return
        if (member.ischr() or member.isblk()) and not self.allow_devices:
            raise Invalid(f"entry {name!r} is a device node, not allowed here", field="source")
        parent = self._parent(parts, name)
        existing = _lstat(parent, base)
        if existing is not None and not (member.isdir() and stat.S_ISDIR(existing.st_mode)):
            self.root.remove(parent, base)
            parent = self._parent(parts, name)
        if member.isreg():
            self._write_file(parent, base, member, archive)
        elif member.isdir():
            if existing is None or not stat.S_ISDIR(existing.st_mode):
                os.mkdir(base, 0o700, dir_fd=parent)
            set_metadata(parent, base, member, as_root=self.as_root)
            self.directories.append((parts, member.mtime))
        elif member.issym():
            os.symlink(member.linkname, base, dir_fd=parent)
            set_metadata(parent, base, member, as_root=self.as_root, is_link=True)
        elif member.islnk():
            self._hardlink(parent, base, member)
        elif member.ischr() or member.isblk():
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            device = os.makedev(member.devmajor, member.devminor)
            try:
                os.mknod(base, kind | 0o600, device, dir_fd=parent)
            except PermissionError:
                raise WolfpackError(f"entry {name!r}: creating a device node needs root") from None
            set_metadata(parent, base, member, as_root=self.as_root)
        elif member.isfifo():
            os.mkfifo(base, 0o600, dir_fd=parent)
            set_metadata(parent, base, member, as_root=self.as_root)
        else:
            raise Invalid(f"entry {name!r}: unsupported tar entry type {member.type!r}")
        self._mark_written(parts)

    def _parent(self, parts: Parts, name: str) -> int:
        fd = self.root.directory(parts[:-1], create=True, entry=name)
        assert fd is not None  # created if missing
        return fd

    def _mark_written(self, parts: Parts) -> None:
        for end in range(len(parts), 0, -1):
            if parts[:end] in self.written:
                break
            self.written.add(parts[:end])

    def _write_file(
        self, parent: int, base: str, member: tarfile.TarInfo, archive: tarfile.TarFile
    ) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(base, flags, 0o600, dir_fd=parent)
        try:
            source = archive.extractfile(member)
            assert source is not None  # a regular file
            while chunk := source.read(CHUNK):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
            set_metadata(fd, None, member, as_root=self.as_root)
        finally:
            os.close(fd)

    def _hardlink(self, parent: int, base: str, member: tarfile.TarInfo) -> None:
        name = member.name
        target = split_entry(member.linkname, what=f"hardlink {name!r} -> target")
        if not target:
            raise Invalid(f"hardlink {name!r} points at the image root", field="source")
        folder = self.root.directory(target[:-1], create=False, entry=name)
        found = _lstat(folder, target[-1]) if folder is not None else None
        if folder is None or found is None:
            raise Invalid(
                f"hardlink {name!r} -> {member.linkname!r}: target is not in the image",
                field="source",
            )
        if stat.S_ISDIR(found.st_mode):
            raise Invalid(f"hardlink {name!r} -> {member.linkname!r} is a directory")
        os.link(target[-1], base, src_dir_fd=folder, dst_dir_fd=parent, follow_symlinks=False)

    def _whiteout(self, parts: Parts, name: str) -> None:
        folder = self.root.directory(parts[:-1], create=False, entry=name)
        if parts[-1] == OPAQUE:
            if folder is not None:
                self._clear_lower(folder, parts[:-1])
            return
        hidden = parts[-1].removeprefix(WHITEOUT)
        if hidden.startswith(WHITEOUT):
            return  # other `.wh..wh.` markers (aufs internals) carry no meaning here
        if hidden in ("", ".", ".."):
            raise Invalid(f"whiteout {name!r} names no file", field="source")
        if folder is None or (*parts[:-1], hidden) in self.written:
            return  # whiteouts hide lower layers only
        if _lstat(folder, hidden) is not None:
            self.root.remove(folder, hidden)

    def _clear_lower(self, folder: int, parts: Parts) -> None:
        """Opaque directory: drop all that lower layers put below it, keep this layer's."""
        for child in os.listdir(folder):
            path = (*parts, child)
            if path not in self.written:
                self.root.remove(folder, child)
                continue
            found = _lstat(folder, child)
            if found is not None and stat.S_ISDIR(found.st_mode):
                inner = os.open(child, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=folder)
                try:
                    self._clear_lower(inner, path)
                finally:
                    os.close(inner)

    def _set_directory_times(self) -> None:
        """Directory times last (adding entries changes them), deepest first."""
        self.root.next_entry()
        for parts, mtime in sorted(self.directories, key=lambda item: -len(item[0])):
            self.root.next_entry()
            folder = self.root.directory(parts[:-1], create=False, entry="/".join(parts))
            if folder is not None and _lstat(folder, parts[-1]) is not None:
                os.utime(parts[-1], (mtime, mtime), dir_fd=folder, follow_symlinks=False)
        root_mtime = self.root_mtime if self.root_mtime is not None else self.newest
        os.utime(self.root.fd, (root_mtime, root_mtime))


def _lstat(folder: int, name: str) -> os.stat_result | None:
    try:
        return os.lstat(name, dir_fd=folder)
    except FileNotFoundError:
        return None
    except OSError as err:
        if err.errno == errno.ENOTDIR:
            return None
        raise
