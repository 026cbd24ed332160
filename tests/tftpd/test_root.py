"""The root's rules without a server: which names open which files."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from libs.common.errors import Invalid
from services.tftpd.options import negotiate
from services.tftpd.root import Refused, assemble, configured


@pytest.fixture
def ipxe(tmp_path: Path) -> Path:
    source = tmp_path / "ipxe"
    source.mkdir()
    for name in ("undionly.kpxe", "ipxe.efi", "snponly.efi"):
        (source / name).write_bytes(name.encode())
    return source


def test_assemble_links_the_binaries_and_serves_them(tmp_path: Path, ipxe: Path) -> None:
    root = assemble(tmp_path / "tftp", ipxe)
    assert (tmp_path / "tftp" / "ipxe.efi").readlink() == ipxe / "ipxe.efi"
    assert root.resolve("/undionly.kpxe") == ipxe / "undionly.kpxe"
    with root.open("snponly.efi") as handle:
        assert handle.read() == b"snponly.efi"


def test_missing_binaries_are_named_with_the_package(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with caplog.at_level(logging.WARNING, logger="wolfpack.tftpd"):
        root = assemble(tmp_path / "tftp", empty)
    assert root.known == {}
    assert "undionly.kpxe, ipxe.efi, snponly.efi" in caplog.text
    assert "'ipxe' package" in caplog.text
    with pytest.raises(Refused) as refused:
        root.resolve("undionly.kpxe")
    assert refused.value.code == 1


def test_only_the_known_names_may_resolve_outside(tmp_path: Path, ipxe: Path) -> None:
    root = assemble(tmp_path / "tftp", ipxe)
    (tmp_path / "tftp" / "copy.efi").symlink_to(ipxe / "ipxe.efi")
    with pytest.raises(Refused) as refused:
        root.resolve("copy.efi")
    assert refused.value.code == 2


@pytest.mark.parametrize("name", ["a\x00b", "../x", "a/../../x", "//x", "/"])
def test_bad_names_are_access_violations(tmp_path: Path, ipxe: Path, name: str) -> None:
    root = assemble(tmp_path / "tftp", ipxe)
    with pytest.raises(Refused) as refused:
        root.resolve(name)
    assert refused.value.code == 2


def test_a_directory_is_not_served(tmp_path: Path, ipxe: Path) -> None:
    root = assemble(tmp_path / "tftp", ipxe)
    (tmp_path / "tftp" / "sub").mkdir()
    with pytest.raises(Refused):
        root.open("sub")


def test_a_configured_root_must_exist(tmp_path: Path) -> None:
    with pytest.raises(Invalid, match="not a directory"):
        configured(tmp_path / "nowhere")


def test_a_configured_root_may_link_its_binaries_anywhere(tmp_path: Path, ipxe: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "ipxe.efi").symlink_to(ipxe / "ipxe.efi")
    root = configured(tmp_path / "mine")
    assert root.resolve("ipxe.efi") == ipxe / "ipxe.efi"


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, {}),
        ({"BLKSIZE": "1468", "tsize": "0"}, {"blksize": 1468, "tsize": 0}),
        ({"blksize": "70000"}, {"blksize": 65464}),
        ({"timeout": "3", "windowsize": "8"}, {"timeout": 3}),
        ({"timeout": "0", "tsize": "x"}, {}),
        ({"timeout": "256"}, {}),
    ],
)
def test_negotiation(options: dict[str, str], expected: dict[str, int]) -> None:
    assert negotiate(options) == expected


@pytest.mark.parametrize("blksize", ["0", "7", "-1", "x", "1" * 50, ""])
def test_unusable_blksize_is_refused_with_error_8(blksize: str) -> None:
    with pytest.raises(Refused) as refused:
        negotiate({"blksize": blksize})
    assert refused.value.code == 8
