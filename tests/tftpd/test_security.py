"""Nothing outside the root can be read, and nothing can be written."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.tftpd.tftpd_helpers import RawClient, Tftpd, error_of, need, request

OUTSIDE = [
    "../../etc/passwd",
    "/etc/passwd",
    "//etc/passwd",
    "/../etc/passwd",
    "shadow",  # a symlink in the root to /etc/shadow
    "etc/passwd",  # through a symlink in the root to /etc
    "nested/passwd",  # a relative symlink climbing out
    "nested/../../inside.txt",
    ".",
    "",
    "/",
]


@pytest.mark.parametrize("name", OUTSIDE)
def test_paths_outside_the_root_get_an_error(tftpd: Tftpd, name: str) -> None:
    with RawClient(tftpd) as client:
        client.ask(request(1, name.encode(), tsize="0"))
        opcode, rest, _ = client.receive()
    assert opcode == 5, f"{name!r} was answered with opcode {opcode}"
    code, message = error_of(rest)
    assert code in (1, 2), message


def test_a_nul_in_the_name_ends_it(tftpd: Tftpd) -> None:
    """The name is what comes before the first NUL: "shadow\\0../x" asks for "shadow"."""
    with RawClient(tftpd) as client:
        client.ask(b"\x00\x01inside.txt\x00octet\x00../../etc/passwd\x00\x00")
        opcode, rest, _ = client.receive()
    # Served as "inside.txt" with a junk option ignored, or refused: never /etc/passwd.
    assert opcode in (3, 5, 6)
    assert b"root:" not in rest


def test_tftp_hpa_cannot_fetch_through_a_symlink_out(tftpd: Tftpd, tmp_path: Path) -> None:
    need("tftp")
    out = tmp_path / "shadow"
    run = subprocess.run(
        ["tftp", tftpd.host, str(tftpd.port), "-m", "binary", "-c", "get", "shadow", str(out)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "Error code 2" in run.stdout + run.stderr
    assert not out.exists() or out.read_bytes() == b""


def test_uploads_are_refused(tftpd: Tftpd, tmp_path: Path) -> None:
    need("tftp")
    upload = tmp_path / "evil"
    upload.write_text("overwrite\n")
    run = subprocess.run(
        ["tftp", tftpd.host, str(tftpd.port), "-c", "put", str(upload), "undionly.kpxe"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "Error code 2" in run.stdout + run.stderr
    assert "read-only" in run.stdout + run.stderr
    assert not (tftpd.data / "tftp" / "evil").exists()
    link = tftpd.data / "tftp" / "undionly.kpxe"
    assert link.resolve().read_bytes() != b"overwrite\n"


def test_raw_wrq_is_refused(tftpd: Tftpd) -> None:
    with RawClient(tftpd) as client:
        client.ask(request(2, b"new-file"))
        opcode, rest, _ = client.receive()
    assert opcode == 5
    assert error_of(rest)[0] == 2
    assert not (tftpd.data / "tftp" / "new-file").exists()
