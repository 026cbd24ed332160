"""Find the kernel a node boots inside its image, as Warewulf does.

Looked for in `/boot/vmlinuz-<version>`, `/lib/modules/<version>/vmlinuz` and
`/usr/lib/modules/<version>/vmlinuz` (symlinks resolved inside the image). The default is the
highest version that is neither a rescue kernel (`vmlinuz-0-rescue-<machine id>`) nor a debug
one (`+debug`, `-debug`, `.debug`, `-dbg`); `kernelversion` picks one by its full version or a
prefix of it. The version reported is the full suffix (`6.1.0-18-cloud-amd64`): what
`uname -r` says and what names `/lib/modules/<version>`.

Versions are compared with a natural sort key (runs of digits as numbers, the rest as text):
`packaging.version` rejects kernel versions such as `5.14.0-427.el9_4.x86_64`, and no small,
well-kept library orders them the way rpm/dpkg do for this narrow case.

/boot is excluded from the image the node unpacks; the kernel is read from the rootfs before.
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from libs.common.errors import NotFound
from libs.common.fs.rootpath import find_in_root
from libs.common.store.cas import ContentStore

BOOT_DIR = "/boot"
BOOT_PREFIX = "vmlinuz-"
MODULE_DIRS = ("/lib/modules", "/usr/lib/modules")
LOOKED_IN = "/boot/vmlinuz-*, /lib/modules/*/vmlinuz, /usr/lib/modules/*/vmlinuz"
_DEBUG = re.compile(r"(\+debug|[-.]debug|-dbg)(\b|$)")
_RESCUE = re.compile(r"(^|-)rescue(-|$)")
_TOKENS = re.compile(r"\d+|\D+")


class FoundKernel(NamedTuple):
    path: Path
    version: str


def version_key(version: str) -> tuple[tuple[int, int, str], ...]:
    """Natural order: `5.14.0-427.24.1` > `5.14.0-427.18.1` > `5.9.0`."""
    return tuple(
        (1, int(token), "") if token.isdigit() else (0, 0, token)
        for token in _TOKENS.findall(version)
    )


def is_special(version: str) -> bool:
    """Rescue and debug kernels are never the default, nor picked by a prefix."""
    return bool(_RESCUE.search(version) or _DEBUG.search(version))


def list_kernels(rootfs: Path) -> list[FoundKernel]:
    """Every kernel in the image, one per version (a /boot copy wins), in no special order."""
    found: dict[str, FoundKernel] = {}
    boot = find_in_root(rootfs, BOOT_DIR)
    if boot is not None and boot.is_dir():
        for name in sorted(os.listdir(boot)):
            if name.startswith(BOOT_PREFIX) and len(name) > len(BOOT_PREFIX):
                _add(found, rootfs, f"{BOOT_DIR}/{name}", name[len(BOOT_PREFIX) :])
    for modules_dir in MODULE_DIRS:
        modules = find_in_root(rootfs, modules_dir)
        if modules is None or not modules.is_dir():
            continue
        for version in sorted(os.listdir(modules)):
            _add(found, rootfs, f"{modules_dir}/{version}/vmlinuz", version)
    return list(found.values())


def _add(found: dict[str, FoundKernel], rootfs: Path, path: str, version: str) -> None:
    if version in found:
        return
    host_path = find_in_root(rootfs, path)
    if host_path is None:
        return
    try:
        info = os.stat(host_path, follow_symlinks=False)
    except OSError:
        return
    if stat.S_ISREG(info.st_mode) and info.st_size > 0:
        found[version] = FoundKernel(host_path, version)


def find_kernel(rootfs: Path, kernelversion: str | None = None) -> FoundKernel:
    """The kernel to boot from the image at `rootfs` (see the module doc)."""
    kernels = list_kernels(rootfs)
    if not kernels:
        raise NotFound(f"no kernel found in image (looked in {LOOKED_IN})", field="kernel")
    if kernelversion:
        exact = [k for k in kernels if k.version == kernelversion]
        if exact:
            return exact[0]
        matching = [
            k for k in kernels if k.version.startswith(kernelversion) and not is_special(k.version)
        ]
        if not matching:
            raise NotFound(
                f"kernel version {kernelversion} not found; available: {_names(kernels)}",
                field="kernelversion",
            )
        return _highest(matching)
    usable = [k for k in kernels if not is_special(k.version)]
    if not usable:
        raise NotFound(
            f"no kernel found in image but rescue or debug ones: {_names(kernels)}; "
            "name one with kernelversion",
            field="kernel",
        )
    return _highest(usable)


def _highest(kernels: Sequence[FoundKernel]) -> FoundKernel:
    return max(kernels, key=lambda k: version_key(k.version))


def _names(kernels: Sequence[FoundKernel]) -> str:
    ordered = sorted(kernels, key=lambda k: version_key(k.version), reverse=True)
    return ", ".join(k.version for k in ordered)


async def put_kernel(
    rootfs: Path, store: ContentStore, kernelversion: str | None = None
) -> tuple[str, str]:
    """Find the image's kernel and store it as is; returns (blob digest, version)."""
    kernel = await asyncio.to_thread(find_kernel, rootfs, kernelversion)
    return await store.put_file(kernel.path), kernel.version
