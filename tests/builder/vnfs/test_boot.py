"""The real judge of an image: a Debian kernel in QEMU unpacks its chunks and runs its /init."""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from libs.common.store.cas import ContentStore
from services.builder.kernel import put_kernel
from services.builder.vnfs import ChunkSettings, build_image
from services.builder.vnfs.compress import Codec
from tests.builder.vnfs.helpers import write
from tests.needs import need_command, need_root, unavailable

KiB = 1 << 10
SMALL = ChunkSettings(min_size=64 * KiB, avg_size=256 * KiB, max_size=1024 * KiB)
MARKER = "WOLFPACK-BOOT-OK"
INIT = f"""#!/bin/busybox sh
/bin/busybox mkdir -p /proc
/bin/busybox mount -t proc proc /proc
export PATH=/bin
cd /
[ "$(busybox stat -c %i a/shared)" = "$(busybox stat -c %i z/shared-too)" ] && echo HARDLINK-OK
[ "$(/bin/busybox cat z/shared-too)" = "shared content" ] && echo HARDLINK-DATA-OK
[ -c /dev/console ] && echo CONSOLE-OK
[ "$(/bin/busybox stat -c %a:%u:%g usr/bin/tool)" = "4755:0:0" ] && echo MODE-OK
[ "$(/bin/busybox readlink bin/sh)" = "busybox" ] && echo SYMLINK-OK
[ "$(/bin/busybox md5sum zzz/last | /bin/busybox cut -c1-32)" = "$(/bin/busybox cat md5)" ] \\
  && echo LAST-CHUNK-OK
[ ! -e boot ] && echo BOOT-EXCLUDED-OK
echo {MARKER}
/bin/busybox poweroff -f
"""
EXPECTED = (
    "HARDLINK-OK",
    "HARDLINK-DATA-OK",
    "CONSOLE-OK",
    "MODE-OK",
    "SYMLINK-OK",
    "LAST-CHUNK-OK",
    "BOOT-EXCLUDED-OK",
    MARKER,
)


def busybox_rootfs(root: Path, kernel: Path) -> None:
    busybox = need_command("busybox", "busybox-static")
    (root / "bin").mkdir(parents=True)
    shutil.copy2(busybox, root / "bin/busybox")
    os.symlink("busybox", root / "bin/sh")
    write(root / "init", INIT.encode(), mode=0o755)
    write(root / "a/shared", b"shared content")
    (root / "z").mkdir()
    os.link(root / "a/shared", root / "z/shared-too")
    write(root / "usr/bin/tool", b"#!/bin/sh\n", mode=0o4755)
    for number in range(40):  # spread the tree over several chunks
        write(root / f"usr/share/filler/{number:02d}", os.urandom(64 * KiB))
    last = os.urandom(200 * KiB)
    write(root / "zzz/last", last)
    write(root / "md5", hashlib.md5(last).hexdigest().encode())
    (root / "dev").mkdir()
    os.mknod(root / "dev/console", stat.S_IFCHR | 0o600, os.makedev(5, 1))
    (root / "boot").mkdir()
    shutil.copy2(kernel, root / "boot" / kernel.name)


def boot(kernel: Path, initrd: Path) -> str:
    done = subprocess.run(
        [
            "qemu-system-x86_64",
            "-accel",
            "tcg",
            "-m",
            "512",
            "-nographic",
            "-no-reboot",
            "-kernel",
            str(kernel),
            "-initrd",
            str(initrd),
            "-append",
            "console=ttyS0 rdinit=/init panic=-1 quiet",
        ],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=240,
        check=False,
    )
    return done.stdout + done.stderr


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
async def test_debian_kernel_boots_a_chunked_image(tmp_path: Path, codec: Codec) -> None:
    need_root("an image with /dev/console (mknod)")
    need_command("qemu-system-x86_64", "qemu-system-x86")
    kernels = sorted(glob.glob("/boot/vmlinuz-*"))
    if not kernels:
        unavailable("no /boot/vmlinuz-* (Debian package linux-image-cloud-amd64)")
    root = tmp_path / "rootfs"
    busybox_rootfs(root, Path(kernels[-1]))
    store = ContentStore(tmp_path / "cas")
    kernel_digest, _version = await put_kernel(root, store)
    result = await build_image(
        root, store, index_path=tmp_path / "chunks.json", compression=codec, chunking=SMALL
    )
    assert result.chunks_total >= 5
    console = boot(store.path(kernel_digest), store.path(result.image_digest))
    missing = [line for line in EXPECTED if line not in console]
    assert not missing, f"missing {missing} in the console output:\n{console[-3000:]}"
