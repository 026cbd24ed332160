"""The OACK acknowledges only the options the client asked for (RFC 2347), and a transfer
without `blksize` in it goes in 512-byte blocks."""

from __future__ import annotations

import pytest

from tests.tftpd.tftpd_helpers import IPXE, RawClient, Tftpd


@pytest.mark.parametrize(
    ("options", "acked"),
    [
        ({"tsize": "0"}, {"tsize": str((IPXE / "undionly.kpxe").stat().st_size)}),
        ({"timeout": "3"}, {"timeout": "3"}),
        (
            {"TSIZE": "0", "windowsize": "4"},
            {"tsize": str((IPXE / "undionly.kpxe").stat().st_size)},
        ),
    ],
)
def test_only_the_options_asked_for_are_acknowledged(
    tftpd: Tftpd, options: dict[str, str], acked: dict[str, str]
) -> None:
    with RawClient(tftpd) as client:
        data, oack = client.download("undionly.kpxe", **options)
    assert oack == acked
    assert data == (IPXE / "undionly.kpxe").read_bytes()


def test_without_blksize_the_blocks_are_512_bytes(tftpd: Tftpd) -> None:
    with RawClient(tftpd) as client:
        client.ask(b"\x00\x01undionly.kpxe\x00octet\x00tsize\x000\x00")
        opcode, _, sender = client.receive()
        assert opcode == 6
        client.sock.sendto(b"\x00\x04\x00\x00", sender)
        opcode, rest, _ = client.receive()
    assert opcode == 3
    assert rest[2:] == (IPXE / "undionly.kpxe").read_bytes()[:512]
