"""Paths resolved inside a root as a chroot sees them: links and `..` never leave the root."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from libs.common.fs.rootpath import MAX_LINKS, LinkLoop, find_in_root, resolve_in_root


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A merged-/usr tree: /lib -> usr/lib, and an /etc of its own."""
    root = tmp_path / "rootfs"
    (root / "usr" / "lib" / "modules").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "etc" / "hostname").write_text("image\n")
    (root / "lib").symlink_to("usr/lib")
    return root


def test_relative_link_is_followed_inside_the_root(root: Path) -> None:
    assert resolve_in_root(root, "/lib/modules") == root / "usr" / "lib" / "modules"
    assert resolve_in_root(root, "lib/./modules/") == root / "usr" / "lib" / "modules"


def test_absolute_link_starts_again_at_the_root(root: Path) -> None:
    (root / "usr" / "lib" / "os-release").symlink_to("/etc/hostname")
    assert resolve_in_root(root, "/lib/os-release") == root / "etc" / "hostname"


def test_dotdot_stops_at_the_root(root: Path) -> None:
    assert resolve_in_root(root, "/../../../etc/hostname") == root / "etc" / "hostname"
    (root / "etc" / "escape").symlink_to("../../../../../etc")
    assert resolve_in_root(root, "/etc/escape/hostname") == root / "etc" / "hostname"


def test_missing_component(root: Path) -> None:
    with pytest.raises(FileNotFoundError):
        resolve_in_root(root, "/usr/share/nothing")
    assert find_in_root(root, "/usr/share/nothing") is None


def test_a_file_where_a_folder_is_needed(root: Path) -> None:
    with pytest.raises(NotADirectoryError):
        resolve_in_root(root, "/etc/hostname/x")
    # As in Linux: `..` after a file does not walk back out of it.
    with pytest.raises(NotADirectoryError):
        resolve_in_root(root, "/etc/hostname/../hostname")
    assert find_in_root(root, "/etc/hostname/x") is None


def test_link_loop(root: Path) -> None:
    (root / "a").symlink_to("b")
    (root / "b").symlink_to("/a")
    with pytest.raises(LinkLoop) as caught:
        resolve_in_root(root, "/a/file")
    assert isinstance(caught.value, OSError) and caught.value.errno == errno.ELOOP
    assert find_in_root(root, "/a") is None


def test_a_long_chain_of_links_below_the_limit_resolves(root: Path) -> None:
    for number in range(MAX_LINKS - 1):
        os.symlink(f"link-{number + 1}", root / f"link-{number}")
    os.symlink("etc", root / f"link-{MAX_LINKS - 1}")
    assert resolve_in_root(root, "/link-0/hostname") == root / "etc" / "hostname"
    os.symlink("link-0", root / "one-more")
    assert find_in_root(root, "/one-more/hostname") is None
