"""Building test images from Python: tar layers with every kind of entry, OCI layouts (one
platform or a multi-platform index), archives, and a snapshot of a tree to compare."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import lzma
import os
import stat
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import httpx
import pytest
import zstandard

from tests.waiting import NeverHappened, eventually_sync

MTIME = 1_700_000_000
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
CAP_NET_RAW = bytes.fromhex("0100000200200000000000000000000000000000")

Entry = tuple[tarfile.TarInfo, bytes]


class OciRegistry:
    """A running docker-registry: `host` is 127.0.0.1:PORT."""

    def __init__(self, host: str, process: subprocess.Popen[bytes]) -> None:
        self.host = host
        self.process = process

    @classmethod
    def started(cls, host: str, process: subprocess.Popen[bytes], log: Path) -> OciRegistry:
        """`process`, a docker-registry serving `host`, once it answers /v2/ (401 counts): it
        tells no one it is ready. If it never does, it is killed and the test fails."""

        def answer() -> httpx.Response:
            if process.poll() is not None:
                raise RuntimeError(f"docker-registry exited with {process.returncode}")
            return httpx.get(f"http://{host}/v2/", timeout=1)

        try:
            eventually_sync(
                answer,
                f"docker-registry answering on {host}",
                within=20,
                ignoring=(httpx.TransportError,),
            )
        except (NeverHappened, RuntimeError) as err:
            process.kill()
            pytest.fail(f"{err}; its log: {log.read_text()}")
        return cls(host, process)


def _info(name: str, kind: bytes, mode: int, uid: int = 0, gid: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.mtime = MTIME
    return info


def file(
    name: str,
    data: bytes = b"",
    mode: int = 0o644,
    uid: int = 0,
    gid: int = 0,
    xattrs: dict[str, bytes] | None = None,
) -> Entry:
    info = _info(name, tarfile.REGTYPE, mode, uid, gid)
    info.size = len(data)
    info.pax_headers = {
        f"SCHILY.xattr.{key}": value.decode("utf-8", "surrogateescape")
        for key, value in (xattrs or {}).items()
    }
    return info, data


def directory(name: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> Entry:
    return _info(name, tarfile.DIRTYPE, mode, uid, gid), b""


def symlink(name: str, target: str) -> Entry:
    info = _info(name, tarfile.SYMTYPE, 0o777)
    info.linkname = target
    return info, b""


def hardlink(name: str, target: str) -> Entry:
    info = _info(name, tarfile.LNKTYPE, 0o644)
    info.linkname = target
    return info, b""


def device(name: str, kind: str, major: int, minor: int, mode: int = 0o600) -> Entry:
    info = _info(name, tarfile.CHRTYPE if kind == "c" else tarfile.BLKTYPE, mode)
    info.devmajor, info.devminor = major, minor
    return info, b""


def fifo(name: str, mode: int = 0o644) -> Entry:
    return _info(name, tarfile.FIFOTYPE, mode), b""


def whiteout(path: str) -> Entry:
    folder, _, base = path.rpartition("/")
    return file(f"{folder}/.wh.{base}" if folder else f".wh.{base}")


def opaque(folder: str) -> Entry:
    return file(f"{folder}/.wh..wh..opq")


def tar_bytes(entries: list[Entry], compression: str | None = None) -> bytes:
    """A PAX tar of `entries` (names kept exactly as given, hostile ones included)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, data in entries:
            archive.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return compress(buffer.getvalue(), compression)


def compress(data: bytes, compression: str | None) -> bytes:
    if compression == "gzip":
        return gzip.compress(data, mtime=0)
    if compression == "zstd":
        return zstandard.ZstdCompressor().compress(data)
    if compression == "xz":
        return lzma.compress(data)
    return data


class LayoutWriter:
    """Writes blobs and index.json of an OCI image layout."""

    def __init__(self, path: Path) -> None:
        self.path = path
        (path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
        self.tags: list[dict[str, Any]] = []

    def blob(self, data: bytes, media_type: str) -> dict[str, Any]:
        digest = hashlib.sha256(data).hexdigest()
        (self.path / "blobs" / "sha256" / digest).write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}

    def image(
        self,
        layers: list[list[Entry]],
        *,
        arch: str = "amd64",
        variant: str | None = None,
        compression: str | None = "gzip",
        config: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Blobs of one image; returns its manifest's descriptor (with its platform)."""
        descs, diff_ids = [], []
        for entries in layers:
            plain = tar_bytes(entries)
            diff_ids.append(f"sha256:{hashlib.sha256(plain).hexdigest()}")
            suffix = {"gzip": "+gzip", "zstd": "+zstd", None: ""}[compression]
            descs.append(self.blob(compress(plain, compression), OCI_LAYER + suffix))
        platform = {"architecture": arch, "os": "linux"} | ({"variant": variant} if variant else {})
        document = platform | {
            "config": config or {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
        config_desc = self.blob(json.dumps(document).encode(), OCI_CONFIG)
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config_desc,
            "layers": descs,
        }
        return self.blob(json.dumps(manifest).encode(), OCI_MANIFEST) | {"platform": platform}

    def index(self, manifests: list[dict[str, Any]]) -> dict[str, Any]:
        document = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
        return self.blob(json.dumps(document).encode(), OCI_INDEX)

    def tag(self, desc: dict[str, Any], tag: str) -> None:
        entry = {k: v for k, v in desc.items() if k != "platform"}
        self.tags.append(entry | {"annotations": {"org.opencontainers.image.ref.name": tag}})
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": self.tags}
        (self.path / "index.json").write_text(json.dumps(index))


def image_layout(path: Path, layers: list[list[Entry]], tag: str = "latest", **kw: Any) -> Path:
    writer = LayoutWriter(path)
    writer.tag(writer.image(layers, **kw), tag)
    return path


def multiplatform_layout(path: Path, per_arch: dict[str, list[list[Entry]]], tag: str) -> Path:
    writer = LayoutWriter(path)
    manifests = [writer.image(layers, arch=arch) for arch, layers in per_arch.items()]
    writer.tag(writer.index(manifests), tag)
    return path


def skopeo(*args: str) -> None:
    done = subprocess.run(["skopeo", *args], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def push(layout: Path, tag: str, url: str, *, creds: str | None = None) -> None:
    """Push a layout's tag (all platforms) to a plain-HTTP registry, `url` = host:port/repo:tag."""
    auth = ["--dest-creds", creds] if creds else []
    skopeo(
        "copy", "--all", "--dest-tls-verify=false", *auth, f"oci:{layout}:{tag}", f"docker://{url}"
    )


def snapshot(root: Path) -> dict[str, tuple[Any, ...]]:
    """Every entry below `root`: kind, mode, owner and content / target / device numbers,
    xattrs; hardlinked files list the paths they share an inode with."""
    entries: dict[str, tuple[Any, ...]] = {}
    inodes: dict[int, list[str]] = {}
    for folder, dirs, files in os.walk(root):
        for name in sorted(dirs + files):
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            kind = stat.S_IFMT(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                entries[rel] = ("symlink", os.readlink(path), st.st_uid, st.st_gid)
                continue
            perms = stat.S_IMODE(st.st_mode)
            xattrs = {key: os.getxattr(path, key) for key in sorted(os.listxattr(path))}
            if stat.S_ISREG(st.st_mode):
                content: Any = Path(path).read_bytes()
                if st.st_nlink > 1:
                    inodes.setdefault(st.st_ino, []).append(rel)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                content = (os.major(st.st_rdev), os.minor(st.st_rdev))
            else:
                content = None
            label = {
                stat.S_IFREG: "file",
                stat.S_IFDIR: "dir",
                stat.S_IFCHR: "chr",
                stat.S_IFBLK: "blk",
                stat.S_IFIFO: "fifo",
            }[kind]
            entries[rel] = (label, perms, st.st_uid, st.st_gid, content, xattrs)
    for paths in inodes.values():
        for rel in paths:
            entries[rel] += (tuple(sorted(paths)),)
    return entries


# -- one image with every kind of entry, and the tree it must give --


def base_layer() -> list[Entry]:
    return [
        directory("etc"),
        file("etc/hostname", b"base\n"),
        file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
        symlink("etc/mtab", "/proc/self/mounts"),
        directory("usr"),
        directory("usr/bin"),
        file("usr/bin/busybox", b"#!busybox\n", mode=0o755),
        file("usr/bin/ping", b"ping\n", mode=0o4755, xattrs={"security.capability": CAP_NET_RAW}),
        hardlink("usr/bin/ping6", "usr/bin/ping"),
        symlink("bin", "usr/bin"),
        directory("dev"),
        device("dev/console", "c", 5, 1),
        device("dev/sda", "b", 8, 0, mode=0o660),
        directory("run"),
        fifo("run/initctl", mode=0o600),
        directory("home"),
        directory("home/user", mode=0o700, uid=1000, gid=1000),
        file("home/user/.profile", b"export A=1\n", mode=0o600, uid=1000, gid=1000,
             xattrs={"user.origin": b"\xffbinary\x00value"}),
        directory("opt"),
        directory("opt/old"),
        file("opt/old/a", b"a"),
        directory("opt/old/sub"),
        file("opt/old/sub/c", b"c"),
        directory("var"),
        directory("var/cache"),
        file("var/cache/x", b"x"),
        directory("srv"),
        directory("srv/data"),
        file("srv/data/inner", b"inner"),
    ]  # fmt: skip


def upper_layers() -> list[list[Entry]]:
    second = [
        file("etc/hostname", b"node\n"),
        whiteout("var/cache/x"),
        directory("opt/old"),
        opaque("opt/old"),
        file("opt/old/new", b"new"),
        hardlink("usr/bin/sh", "usr/bin/busybox"),
        file("srv/data", b"now a file\n"),
        file("usr/bin/wall", b"wall\n", mode=0o2755, gid=5),
    ]
    third = [whiteout("usr/bin/ping6"), file("etc/.wh.keep-me-not", b"")]
    return [second, third]


def _d(mode: int = 0o755, uid: int = 0, gid: int = 0) -> tuple[object, ...]:
    return ("dir", mode, uid, gid, None, {})


def _f(
    data: bytes,
    mode: int = 0o644,
    uid: int = 0,
    gid: int = 0,
    xattrs: dict[str, bytes] | None = None,
) -> tuple[object, ...]:
    return ("file", mode, uid, gid, data, xattrs or {})


def _l(target: str) -> tuple[object, ...]:
    return ("symlink", target, 0, 0)


def base_tree() -> dict[str, tuple[object, ...]]:
    """What base_layer() must give, as snapshot() reports it."""
    ping = ("usr/bin/ping", "usr/bin/ping6")
    cap = {"security.capability": CAP_NET_RAW}
    return {
        "etc": _d(),
        "etc/hostname": _f(b"base\n"),
        "etc/passwd": _f(b"root:x:0:0::/root:/bin/sh\n"),
        "etc/mtab": _l("/proc/self/mounts"),
        "usr": _d(),
        "usr/bin": _d(),
        "usr/bin/busybox": _f(b"#!busybox\n", 0o755),
        "usr/bin/ping": (*_f(b"ping\n", 0o4755, xattrs=cap), ping),
        "usr/bin/ping6": (*_f(b"ping\n", 0o4755, xattrs=cap), ping),
        "bin": _l("usr/bin"),
        "dev": _d(),
        "dev/console": ("chr", 0o600, 0, 0, (5, 1), {}),
        "dev/sda": ("blk", 0o660, 0, 0, (8, 0), {}),
        "run": _d(),
        "run/initctl": ("fifo", 0o600, 0, 0, None, {}),
        "home": _d(),
        "home/user": _d(0o700, 1000, 1000),
        "home/user/.profile": _f(
            b"export A=1\n", 0o600, 1000, 1000, {"user.origin": b"\xffbinary\x00value"}
        ),
        "opt": _d(),
        "opt/old": _d(),
        "opt/old/a": _f(b"a"),
        "opt/old/sub": _d(),
        "opt/old/sub/c": _f(b"c"),
        "var": _d(),
        "var/cache": _d(),
        "var/cache/x": _f(b"x"),
        "srv": _d(),
        "srv/data": _d(),
        "srv/data/inner": _f(b"inner"),
    }


def layered_tree() -> dict[str, tuple[object, ...]]:
    """What base_layer() then upper_layers() must give."""
    tree = base_tree()
    for gone in ("var/cache/x", "opt/old/a", "opt/old/sub", "opt/old/sub/c", "usr/bin/ping6"):
        del tree[gone]
    del tree["srv/data/inner"]
    busybox = ("usr/bin/busybox", "usr/bin/sh")
    tree |= {
        "etc/hostname": _f(b"node\n"),
        "opt/old/new": _f(b"new"),
        "usr/bin/ping": _f(b"ping\n", 0o4755, xattrs={"security.capability": CAP_NET_RAW}),
        "usr/bin/busybox": (*_f(b"#!busybox\n", 0o755), busybox),
        "usr/bin/sh": (*_f(b"#!busybox\n", 0o755), busybox),
        "srv/data": _f(b"now a file\n"),
        "usr/bin/wall": _f(b"wall\n", 0o2755, 0, 5),
    }
    return tree
