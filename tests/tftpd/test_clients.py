"""Each iPXE binary, fetched by independent clients, arrives byte for byte."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import tftpy
from tftpy.TftpPacketTypes import TftpPacketOACK

from tests.tftpd.tftpd_helpers import BINARIES, IPXE, RawClient, Tftpd, need


@pytest.mark.parametrize("name", BINARIES)
def test_tftp_hpa_gets_each_binary(tftpd: Tftpd, tmp_path: Path, name: str) -> None:
    need("tftp")
    out = tmp_path / name
    run = subprocess.run(
        ["tftp", "-v", tftpd.host, str(tftpd.port), "-m", "binary", "-c", "get", name, str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert out.read_bytes() == (IPXE / name).read_bytes()


@pytest.mark.parametrize("name", BINARIES)
def test_atftp_negotiates_blksize_and_tsize(tftpd: Tftpd, tmp_path: Path, name: str) -> None:
    need("atftp")
    out = tmp_path / name
    run = subprocess.run(
        [
            *("atftp", "--trace", "--option", "blksize 1468", "--option", "tsize 0"),
            *("-g", "-r", name, "-l", str(out), tftpd.host, str(tftpd.port)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    size = (IPXE / name).stat().st_size
    oack = re.search(r"received OACK <(.*?)>", run.stdout + run.stderr)
    assert oack, run.stdout + run.stderr
    assert f"tsize: {size}" in oack.group(1)
    assert "blksize: 1468" in oack.group(1)
    assert out.read_bytes() == (IPXE / name).read_bytes()


def test_tftpy_client_gets_negotiated_options(tftpd: Tftpd, tmp_path: Path) -> None:
    oacks: list[TftpPacketOACK] = []
    client = tftpy.TftpClient(tftpd.host, tftpd.port, options={"blksize": 8192, "tsize": 0})
    out = tmp_path / "ipxe.efi"
    client.download(
        "/ipxe.efi",  # a leading slash, as firmware sends it, means the root
        str(out),
        packethook=lambda packet: (
            oacks.append(packet) if isinstance(packet, TftpPacketOACK) else None
        ),
    )
    assert out.read_bytes() == (IPXE / "ipxe.efi").read_bytes()
    assert len(oacks) == 1
    assert int(oacks[0].options["blksize"]) == 8192
    assert int(oacks[0].options["tsize"]) == (IPXE / "ipxe.efi").stat().st_size


def test_timeout_option_is_acknowledged(tftpd: Tftpd) -> None:
    with RawClient(tftpd) as client:
        data, acked = client.download("undionly.kpxe", timeout="3", blksize="1432")
    assert acked == {"timeout": "3", "blksize": "1432"}
    assert data == (IPXE / "undionly.kpxe").read_bytes()


def test_plain_rfc1350_transfer_without_options(tftpd: Tftpd) -> None:
    with RawClient(tftpd) as client:
        data, acked = client.download("snponly.efi")
    assert acked == {}
    assert data == (IPXE / "snponly.efi").read_bytes()


def test_a_file_under_the_root_and_a_link_inside_it(tftpd: Tftpd) -> None:
    with RawClient(tftpd) as client:
        assert client.download("inside.txt")[0] == b"served from inside the root\n"
    with RawClient(tftpd) as client:
        assert client.download("alias")[0] == b"served from inside the root\n"
