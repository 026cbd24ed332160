"""Test helpers for the VNFS builder: a source tree with every kind of entry, and an unpacker that
follows the kernel's rules (init/initramfs.c), written independently of the builder's code.

The unpacker reads a whole image: concatenated compressed members (gzip or zstd, detected by
magic), each holding newc archives; zero padding between archives is skipped; hardlinks are
resolved by (ino, devmajor, devminor, mode) and forgotten at each TRAILER!!!; a later entry
replaces an earlier one; directory times are set last.
"""

from __future__ import annotations

import hashlib
import os
import stat
import zlib
from dataclasses import dataclass
from pathlib import Path

import zstandard

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def members(image: bytes) -> list[tuple[str, bytes]]:
    """The decompressed members of an image, each with its codec, in order."""
    found: list[tuple[str, bytes]] = []
    rest = image
    while rest:
        if rest.startswith(GZIP_MAGIC):
            inflater = zlib.decompressobj(31)
            data = inflater.decompress(rest)
            assert inflater.eof, "truncated gzip member"
            found.append(("gzip", data))
            rest = inflater.unused_data
        elif rest.startswith(ZSTD_MAGIC):
            unzstd = zstandard.ZstdDecompressor().decompressobj()
            data = unzstd.decompress(rest)
            assert unzstd.eof, "truncated zstd frame"
            found.append(("zstd", data))
            rest = unzstd.unused_data
        else:
            raise AssertionError(f"unknown member magic {rest[:4].hex()}")
    return found


@dataclass
class Record:
    name: str
    ino: int
    mode: int
    uid: int
    gid: int
    nlink: int
    mtime: int
    devmajor: int
    devminor: int
    rdevmajor: int
    rdevminor: int
    data: bytes


def records(archive: bytes) -> list[Record | None]:
    """Every record of a stream of newc archives; None marks a TRAILER!!!."""
    out: list[Record | None] = []
    pos = 0
    while pos < len(archive):
        if archive[pos] == 0:  # padding between archives, as the kernel skips it
            pos += 1
            continue
        assert pos % 4 == 0, f"archive starts at unaligned offset {pos}"
        head = archive[pos : pos + 110]
        assert head[:6] == b"070701", f"bad magic at {pos}: {head[:6]!r}"
        fields = [int(head[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
        namesize, size = fields[11], fields[6]
        name_end = pos + 110 + namesize
        name = archive[pos + 110 : name_end - 1].decode("utf-8", "surrogateescape")
        assert archive[name_end - 1] == 0
        data_start = (name_end + 3) & ~3
        data = archive[data_start : data_start + size]
        assert len(data) == size, f"{name}: truncated data"
        pos = (data_start + size + 3) & ~3
        if name == "TRAILER!!!":
            out.append(None)
            continue
        out.append(
            Record(
                name,
                fields[0],
                fields[1],
                fields[2],
                fields[3],
                fields[4],
                fields[5],
                fields[7],
                fields[8],
                fields[9],
                fields[10],
                data,
            )
        )
    return out


def unpack(image: bytes, into: Path) -> list[str]:
    """Unpack like the kernel does; returns the member codecs seen."""
    into.mkdir(parents=True, exist_ok=True)
    codecs = []
    dir_times: list[tuple[Path, int]] = []
    for codec, archive in members(image):
        codecs.append(codec)
        links: dict[tuple[int, int, int, int], Path] = {}
        for record in records(archive):
            if record is None:
                links.clear()
                continue
            _unpack_one(record, into, links, dir_times)
    for path, mtime in reversed(dir_times):
        os.utime(path, (mtime, mtime), follow_symlinks=False)
    return codecs


def _clean(path: Path, keep_dir: bool) -> None:
    if path.is_symlink() or path.exists():
        if path.is_dir() and not path.is_symlink():
            if not keep_dir:
                os.rmdir(path)
        else:
            path.unlink()


def _unpack_one(
    record: Record,
    into: Path,
    links: dict[tuple[int, int, int, int], Path],
    dir_times: list[tuple[Path, int]],
) -> None:
    path = into / record.name
    mode = record.mode
    if stat.S_ISREG(mode):
        if record.nlink >= 2:
            identity = (record.ino, record.devmajor, record.devminor, mode)
            first = links.get(identity)
            if first is not None:
                _clean(path, keep_dir=False)
                os.link(first, path)
                if record.data:
                    with open(path, "r+b") as out:
                        out.write(record.data)
                return
            links[identity] = path
        _clean(path, keep_dir=False)
        with open(path, "wb") as out:
            out.write(record.data)
        os.chown(path, record.uid, record.gid)
        os.chmod(path, stat.S_IMODE(mode))
        os.utime(path, (record.mtime, record.mtime))
    elif stat.S_ISDIR(mode):
        _clean(path, keep_dir=True)
        path.mkdir(exist_ok=True)
        os.chown(path, record.uid, record.gid)
        os.chmod(path, stat.S_IMODE(mode))
        dir_times.append((path, record.mtime))
    elif stat.S_ISLNK(mode):
        _clean(path, keep_dir=False)
        os.symlink(record.data, path)
        os.chown(path, record.uid, record.gid, follow_symlinks=False)
        os.utime(path, (record.mtime, record.mtime), follow_symlinks=False)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
        _clean(path, keep_dir=False)
        os.mknod(path, mode, os.makedev(record.rdevmajor, record.rdevminor))
        os.chown(path, record.uid, record.gid)
        os.chmod(path, stat.S_IMODE(mode))
        os.utime(path, (record.mtime, record.mtime))
    else:
        raise AssertionError(f"{record.name}: unexpected mode {mode:o}")


def describe(root: Path, skip: frozenset[str] = frozenset()) -> dict[str, tuple[object, ...]]:
    """What a user would compare: per relative path its type, mode, owner, mtime (seconds) and
    content digest, symlink target or device numbers. Paths in `skip` (and below) are left out.
    Sockets are left out (images never hold them)."""
    seen: dict[str, tuple[object, ...]] = {}
    for folder, dirs, files in os.walk(root):
        rel_folder = os.path.relpath(folder, root)
        for name in sorted(dirs + files):
            rel = os.path.normpath(os.path.join(rel_folder, name))
            full = os.path.join(folder, name)
            info = os.lstat(full)
            if stat.S_ISSOCK(info.st_mode):
                continue
            if rel in skip or any(rel.startswith(s + "/") for s in skip):
                continue
            if stat.S_ISREG(info.st_mode):
                with open(full, "rb") as handle:
                    what: object = hashlib.sha256(handle.read()).hexdigest()
            elif stat.S_ISLNK(info.st_mode):
                what = os.readlink(full)
            elif stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode):
                what = (os.major(info.st_rdev), os.minor(info.st_rdev))
            else:
                what = None
            seen[rel] = (
                stat.S_IFMT(info.st_mode),
                stat.S_IMODE(info.st_mode),
                info.st_uid,
                info.st_gid,
                int(info.st_mtime),
                what,
            )
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]
    return seen


def hardlink_sets(root: Path) -> set[frozenset[str]]:
    """Groups of relative paths that share an inode (two or more)."""
    groups: dict[tuple[int, int], set[str]] = {}
    for folder, _dirs, files in os.walk(root):
        for name in files:
            full = os.path.join(folder, name)
            info = os.lstat(full)
            if stat.S_ISREG(info.st_mode) and info.st_nlink > 1:
                rel = os.path.relpath(full, root)
                groups.setdefault((info.st_dev, info.st_ino), set()).add(rel)
    return {frozenset(g) for g in groups.values() if len(g) > 1}


def write(path: Path, data: bytes, mode: int = 0o644, owner: tuple[int, int] = (0, 0)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chown(path, *owner)
    os.chmod(path, mode)
    return path


def make_tree(root: Path, *, bulk_files: int = 60) -> None:
    """A rootfs with every kind of entry the builder must carry over."""
    rng = _Random(7)
    root.mkdir(parents=True, exist_ok=True)
    write(root / "empty", b"")
    write(root / "one-byte", b"x")
    write(root / "three", b"abc")
    write(root / "etc/hostname", b"node\n")
    write(root / "usr/bin/suid", rng.bytes(5000), mode=0o4755)
    write(root / "usr/bin/sgid", rng.bytes(700), mode=0o2711, owner=(0, 5))
    write(root / "home/user/notes.txt", b"owned\n" * 100, mode=0o600, owner=(1234, 5678))
    write(root / "with space/and ünïcödé name.txt", "héllo wörld\n".encode())
    write(root / os.fsdecode(b"with space/latin-1 \xe9t\xe9"), b"not utf-8 name\n")
    os.symlink(os.fsdecode(b"latin-1 \xe9t\xe9"), root / "with space/link-to-latin-1")
    write(root / "srv/incompressible.bin", rng.bytes(300_000))
    write(root / "srv/compressible.txt", b"the same line again\n" * 40_000)
    for number in range(bulk_files):
        write(
            root / f"usr/share/bulk/{number // 10:02d}/file-{number:03d}", rng.bytes(number * 997)
        )
    deep = root.joinpath(*[f"d{level}" for level in range(40)])
    write(deep / "leaf", b"deep\n")
    (root / "tmp").mkdir(exist_ok=True)
    os.chmod(root / "tmp", 0o1777)
    (root / "emptydir").mkdir()
    os.symlink("../etc/hostname", root / "usr/hostname-link")
    os.symlink("/nonexistent/absolute", root / "dangling")
    os.symlink("usr/bin", root / "bin")
    # hardlinks: in one folder, across folders, and one with three names
    os.link(root / "usr/bin/suid", root / "usr/bin/suid-again")
    os.link(root / "srv/compressible.txt", root / "etc/compressible-copy")
    write(root / "a/three-names", b"three names\n")
    (root / "b").mkdir()
    (root / "z").mkdir()
    os.link(root / "a/three-names", root / "b/second")
    os.link(root / "a/three-names", root / "z/third")
    (root / "dev").mkdir()
    os.mknod(root / "dev/console", stat.S_IFCHR | 0o600, os.makedev(5, 1))
    os.mknod(root / "dev/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(root / "dev/vda", stat.S_IFBLK | 0o660, os.makedev(254, 0))
    os.chown(root / "dev/vda", 0, 6)
    os.mkfifo(root / "run-fifo", 0o640)
    os.utime(root / "etc/hostname", (1_600_000_000, 1_600_000_000))
    os.utime(root / "usr/hostname-link", (1_500_000_000, 1_500_000_000), follow_symlinks=False)


class _Random:
    """Deterministic bytes (so failures reproduce) without the random module's global state."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._count = 0

    def bytes(self, count: int) -> bytes:
        self._count += 1
        return hashlib.shake_256(f"{self._seed}/{self._count}".encode()).digest(count)
