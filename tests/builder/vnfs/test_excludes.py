"""Excludes follow Warewulf: Go filepath.Match globs relative to the root, the image's own
/etc/warewulf/excludes, plus the builder's defaults (which a caller may replace)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from libs.common.errors import Invalid
from libs.common.store.cas import ContentStore
from services.builder.vnfs import DEFAULT_EXCLUDES, build_image
from services.builder.vnfs.excludes import BadPattern, Excludes, translate
from tests.builder.vnfs.helpers import describe, make_tree, unpack, write


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("/boot/", "boot", True),
        ("boot", "bootx", False),
        ("/tmp/*", "tmp", False),
        ("/tmp/*", "tmp/a", True),
        ("/tmp/*", "tmp/a/b", False),  # * stops at / (the walk skips a matched dir instead)
        ("*.deb", "x.deb", True),
        ("*.deb", "dir/x.deb", False),
        ("usr/*/doc", "usr/share/doc", True),
        ("a?c", "abc", True),
        ("a?c", "a/c", False),
        ("[a-c]x", "bx", True),
        ("[^a-c]x", "dx", True),
        ("[^a-c]x", "bx", False),
        ("[!a]x", "!x", True),  # Go negates with ^ only
        ("\\*", "*", True),
        ("\\*", "a", False),
        ("a.b", "axb", False),  # . is literal
        ("(x)+", "(x)+", True),  # regex syntax is literal
    ],
)
def test_patterns_match_like_go(pattern: str, path: str, matches: bool) -> None:
    assert Excludes([pattern]).matches(path) is matches


@pytest.mark.parametrize("bad", ["[", "[]", "[a", "x\\", "[z-a]"])
def test_go_bad_patterns_are_rejected(bad: str) -> None:
    with pytest.raises(BadPattern):
        translate(bad)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    make_tree(root)
    write(root / "boot/vmlinuz-6.1.0-1-amd64", b"kernel")
    write(root / "tmp/scratch", b"tmp file")
    write(root / "var/cache/apt/archives/bash_5.2_amd64.deb", b"deb")
    write(root / "var/cache/apt/archives/lock", b"")
    write(root / "var/lib/apt/lists/deb.debian.org_Packages", b"lists")
    (root / "proc").mkdir()
    (root / "sys").mkdir()
    return root


async def build_and_unpack(tree: Path, tmp_path: Path, excludes: list[str] | None = None) -> Path:
    store = ContentStore(tmp_path / "cas")
    result = await build_image(tree, store, index_path=tmp_path / "chunks.json", excludes=excludes)
    out = tmp_path / "out"
    with store.open(result.image_digest) as blob:
        unpack(blob.read(), out)
    return out


async def test_defaults_and_image_excludes_file(tree: Path, tmp_path: Path) -> None:
    write(
        tree / "etc/warewulf/excludes",
        b"# caches we do not want\n\n/usr/share/bulk/0*\n/srv/*.bin\n  /home/  \n[broken\n",
    )
    out = await build_and_unpack(tree, tmp_path)
    expected = describe(
        tree,
        skip=frozenset(
            {
                "boot",
                "tmp/scratch",
                "var/cache/apt/archives/bash_5.2_amd64.deb",
                "var/lib/apt/lists/deb.debian.org_Packages",
                "usr/share/bulk/00",
                "usr/share/bulk/01",
                "usr/share/bulk/02",
                "usr/share/bulk/03",
                "usr/share/bulk/04",
                "usr/share/bulk/05",
                "srv/incompressible.bin",
                "home",
            }
        ),
    )
    got = describe(out)
    assert got == expected
    # kept: the folders themselves, device nodes, other files in the same folders
    for kept in (
        "tmp",
        "proc",
        "sys",
        "dev/console",
        "var/cache/apt/archives/lock",
        "srv/compressible.txt",
        "usr/share/bulk",
    ):
        assert kept in got, kept


async def test_caller_excludes_replace_the_defaults(tree: Path, tmp_path: Path) -> None:
    out = await build_and_unpack(tree, tmp_path, excludes=["/etc/hostname"])
    assert (out / "boot/vmlinuz-6.1.0-1-amd64").read_bytes() == b"kernel"
    assert (out / "tmp/scratch").exists()
    assert not (out / "etc/hostname").exists()
    assert describe(out) == describe(tree, skip=frozenset({"etc/hostname"}))


async def test_no_excludes_at_all(tree: Path, tmp_path: Path) -> None:
    out = await build_and_unpack(tree, tmp_path, excludes=[])
    assert describe(out) == describe(tree)


async def test_bad_caller_pattern_is_invalid(tree: Path, tmp_path: Path) -> None:
    with pytest.raises(Invalid, match=r"bad exclude pattern.*\[oops"):
        await build_and_unpack(tree, tmp_path, excludes=["/[oops"])


async def test_bad_line_in_image_file_is_skipped_with_a_warning(
    tree: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(tree / "etc/warewulf/excludes", b"[broken\n/etc/hostname\n")
    with caplog.at_level(logging.WARNING):
        out = await build_and_unpack(tree, tmp_path)
    assert "/etc/warewulf/excludes line 1" in caplog.text
    assert not (out / "etc/hostname").exists()


async def test_excludes_file_linking_out_of_the_image_is_not_followed(
    tree: Path, tmp_path: Path
) -> None:
    host_file = tmp_path / "host-excludes"
    host_file.write_text("*\n")
    (tree / "etc/warewulf").mkdir(parents=True)
    os.symlink(host_file, tree / "etc/warewulf/excludes")  # absolute: re-rooted in the image
    out = await build_and_unpack(tree, tmp_path, excludes=[])
    assert describe(out) == describe(tree)


def test_default_excludes_keep_dev_and_drop_boot() -> None:
    defaults = Excludes(DEFAULT_EXCLUDES)
    assert defaults.matches("boot")
    assert not defaults.matches("dev") and not defaults.matches("dev/console")
    assert defaults.matches("var/cache/apt/archives/x.deb")
    assert not defaults.matches("proc") and defaults.matches("proc/1")
