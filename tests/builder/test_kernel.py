"""The kernel is found inside the image: highest normal version, or the one asked for."""

from __future__ import annotations

import filecmp
import glob
import os
import shutil
from pathlib import Path

import pytest

from libs.common.errors import NotFound
from libs.common.store.cas import ContentStore
from services.builder.kernel import find_kernel, list_kernels, put_kernel, version_key
from tests.builder.vnfs.helpers import write
from tests.needs import unavailable

EL9 = [
    "5.14.0-427.18.1.el9_4.x86_64",
    "5.14.0-427.24.1.el9_4.x86_64",
    "5.14.0-70.13.1.el9_0.x86_64",
    "0-rescue-eb46964329b146e39518c625feab3ea0",
    "5.14.0-503.11.1.el9_5.x86_64+debug",
]


def boot_kernels(root: Path, versions: list[str]) -> None:
    for version in versions:
        write(root / f"boot/vmlinuz-{version}", f"kernel {version}".encode())


def test_highest_normal_version_wins_over_rescue_and_debug(tmp_path: Path) -> None:
    boot_kernels(tmp_path, EL9)
    write(tmp_path / "boot/config-5.14.0-503.11.1.el9_5.x86_64", b"not a kernel")
    kernel = find_kernel(tmp_path)
    assert kernel.version == "5.14.0-427.24.1.el9_4.x86_64"
    assert kernel.path == tmp_path / "boot/vmlinuz-5.14.0-427.24.1.el9_4.x86_64"


def test_numbers_compare_as_numbers() -> None:
    assert version_key("6.1.0-10-amd64") > version_key("6.1.0-9-amd64")
    assert version_key("5.15.0-119-generic") > version_key("5.14.0-427.24.1.el9_4.x86_64")
    assert version_key("6.10.1") > version_key("6.9.12")


def test_kernelversion_picks_exact_or_prefix(tmp_path: Path) -> None:
    boot_kernels(tmp_path, EL9)
    assert find_kernel(tmp_path, "5.14.0-70.13.1.el9_0.x86_64").version.startswith("5.14.0-70.")
    assert find_kernel(tmp_path, "5.14.0-427").version == "5.14.0-427.24.1.el9_4.x86_64"
    assert find_kernel(tmp_path, "5.14.0-427.18").version == "5.14.0-427.18.1.el9_4.x86_64"
    # a debug kernel only when named in full
    debug = "5.14.0-503.11.1.el9_5.x86_64+debug"
    assert find_kernel(tmp_path, debug).version == debug


def test_unknown_kernelversion_lists_what_exists(tmp_path: Path) -> None:
    boot_kernels(tmp_path, EL9[:2])
    with pytest.raises(
        NotFound,
        match=r"kernel version 6\.1 not found; available: "
        r"5\.14\.0-427\.24\.1\.el9_4\.x86_64, 5\.14\.0-427\.18\.1",
    ):
        find_kernel(tmp_path, "6.1")


def test_no_kernel_says_where_it_looked(tmp_path: Path) -> None:
    (tmp_path / "boot").mkdir()
    write(tmp_path / "boot/vmlinuz", b"unversioned symlink target")  # no version: ignored
    with pytest.raises(NotFound, match=r"no kernel found in image \(looked in /boot/vmlinuz-\*"):
        find_kernel(tmp_path)


def test_only_rescue_kernel_is_not_a_default(tmp_path: Path) -> None:
    boot_kernels(tmp_path, [EL9[3]])
    with pytest.raises(NotFound, match="rescue or debug"):
        find_kernel(tmp_path)


def test_module_dirs_and_merged_usr(tmp_path: Path) -> None:
    write(tmp_path / "usr/lib/modules/6.6.1-200.fc39.x86_64/vmlinuz", b"fedora kernel")
    write(tmp_path / "usr/lib/modules/6.5.0-1.fc39.x86_64/vmlinuz", b"older")
    (tmp_path / "usr/lib/modules/6.7.0-no-kernel").mkdir()  # modules without a vmlinuz
    os.symlink("usr/lib", tmp_path / "lib")  # merged /usr: same kernels seen twice
    assert len(list_kernels(tmp_path)) == 2
    kernel = find_kernel(tmp_path)
    assert kernel.version == "6.6.1-200.fc39.x86_64"
    assert kernel.path.read_bytes() == b"fedora kernel"


def test_symlinks_never_leave_the_image(tmp_path: Path) -> None:
    outside = tmp_path / "host"
    write(outside / "modules/9.9.9-host/vmlinuz", b"the build host's kernel")
    root = tmp_path / "image"
    root.mkdir()
    os.symlink(str(outside), root / "lib")  # absolute: means /host... inside the image
    write(root / "boot/vmlinuz-6.1.0-1-amd64", b"image kernel")
    os.symlink(str(outside / "modules/9.9.9-host/vmlinuz"), root / "boot/vmlinuz-9.9.9-host")
    assert [k.version for k in list_kernels(root)] == ["6.1.0-1-amd64"]


async def test_real_debian_kernel_is_found_and_stored_byte_identical(tmp_path: Path) -> None:
    installed = sorted(glob.glob("/boot/vmlinuz-*"))
    if not installed:
        unavailable("no /boot/vmlinuz-* (Debian package linux-image-cloud-amd64)")
    source = Path(installed[-1])
    version = source.name.removeprefix("vmlinuz-")
    root = tmp_path / "rootfs"
    (root / "boot").mkdir(parents=True)
    shutil.copy2(source, root / f"boot/{source.name}")
    (root / f"usr/lib/modules/{version}/kernel").mkdir(parents=True)
    boot_kernels(root, ["0-rescue-0123456789abcdef"])
    store = ContentStore(tmp_path / "cas")
    digest, found = await put_kernel(root, store)
    assert found == version
    assert filecmp.cmp(store.path(digest), source, shallow=False)
