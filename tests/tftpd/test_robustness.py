"""Malformed packets, odd options and vanishing clients never stop the server."""

from __future__ import annotations

import random
import socket
import struct

import pytest

from tests.tftpd.tftpd_helpers import IPXE, RawClient, Tftpd, ack, error_of, request

FUZZ_CASES = 2000
SYNC_EVERY = 20
FUZZER = "127.0.0.2"


def _fuzz_packet(rng: random.Random) -> bytes:
    """A datagram from one of several families of breakage, all deterministic from `rng`."""
    name = rng.choice([b"undionly.kpxe", b"ipxe.efi", b"nope", b"../x", bytes(range(1, 40))])
    kind = rng.randrange(10)
    if kind == 0:  # pure garbage of any length
        return rng.randbytes(rng.randrange(0, 1500))
    if kind == 1:  # a valid-looking header with an unknown opcode
        return struct.pack("!H", rng.choice([0, 7, 9, 255, 65535])) + rng.randbytes(20)
    if kind == 2:  # RRQ without NUL terminators
        return struct.pack("!H", 1) + name + b"octet"
    if kind == 3:  # RRQ with one option name and no value, or odd pairs
        return request(1, name) + b"blksize\0"
    if kind == 4:  # huge or nonsense option values
        value = rng.choice(["0", "7", "70000", "-1", "1e9", "9" * 5000, "x", "", " 512"])
        return request(1, name, blksize=value, tsize=rng.choice(["0", "-5", "a"]))
    if kind == 5:  # non-ASCII file name and mode
        return struct.pack("!H", 1) + b"\xff\xfe\x80" + b"\0" + b"\xc3\x28" + b"\0"
    if kind == 6:  # truncated DATA/ACK/ERROR/OACK on the request port
        return struct.pack("!H", rng.choice([3, 4, 5, 6])) + rng.randbytes(rng.randrange(0, 3))
    if kind == 7:  # a request far too long
        return request(1, b"a" * 4000)
    if kind == 8:  # an unknown mode and many options
        options = {f"opt{i}": str(i) for i in range(rng.randrange(1, 60))}
        return request(1, name, mode=b"mail", **options)
    return request(1, name, timeout=rng.choice(["0", "256", "1"]), windowsize="8")


def _fuzzer() -> socket.socket:
    # Its own address: its transfers linger, and one client may hold only so many at once
    # (services/tftpd/slots.py); the other tests ask from 127.0.0.1.
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((FUZZER, 0))
    return sock


def test_fuzzed_packets_leave_the_server_serving(tftpd: Tftpd) -> None:
    rng = random.Random(20240601)
    sock = _fuzzer()
    with RawClient(tftpd) as sync:
        for case in range(FUZZ_CASES):
            # A fresh source port now and then, so requests are not taken as retransmissions.
            if rng.random() < 0.1:
                sock.close()
                sock = _fuzzer()
            sock.sendto(_fuzz_packet(rng), (tftpd.host, tftpd.port))
            if case % SYNC_EVERY == SYNC_EVERY - 1:
                # A WRQ's answer means every packet before it was handled (and none was
                # lost to a full socket buffer): the server is alive at every step.
                sync.ask(request(2, b"sync"))
                assert sync.receive()[0] == 5
    sock.close()
    with RawClient(tftpd) as client:
        data, _ = client.download("undionly.kpxe", blksize="1468")
    assert data == (IPXE / "undionly.kpxe").read_bytes()
    assert "Traceback" not in tftpd.log.read_text()


@pytest.mark.parametrize("blksize", ["0", "7", "abc", "9" * 40])
def test_unusable_blksize_fails_negotiation(tftpd: Tftpd, blksize: str) -> None:
    with RawClient(tftpd) as client:
        client.ask(request(1, b"undionly.kpxe", blksize=blksize))
        opcode, rest, _ = client.receive()
    assert opcode == 5
    assert error_of(rest)[0] == 8


def test_oversized_blksize_is_lowered(tftpd: Tftpd) -> None:
    with RawClient(tftpd) as client:
        data, acked = client.download("ipxe.efi", blksize="70000")
    assert acked["blksize"] == "65464"
    assert data == (IPXE / "ipxe.efi").read_bytes()


def test_malformed_request_gets_illegal_operation(tftpd: Tftpd) -> None:
    with RawClient(tftpd) as client:
        client.ask(struct.pack("!H", 1) + b"\xff\xfe\0octet\0")
        opcode, rest, _ = client.receive()
    assert opcode == 5
    assert error_of(rest)[0] == 4


def test_vanished_client_is_resent_to_then_given_up(tftpd: Tftpd) -> None:
    """With a 1 s timeout the server resends block 1 a few times, then stops."""
    with RawClient(tftpd, timeout=3) as client:
        client.ask(request(1, b"ipxe.efi", timeout="1"))
        opcode, _, sender = client.receive()
        assert opcode == 6
        client.sock.sendto(ack(0), sender)
        blocks = []
        with pytest.raises(TimeoutError):
            while True:
                opcode, rest, _ = client.receive()
                blocks.append((opcode, rest[:2]))
    # Block 1 once, then resent: the same DATA several times, and then nothing more.
    assert len(blocks) >= 3
    assert set(blocks) == {(3, b"\x00\x01")}


def test_stranger_on_a_transfer_port_gets_unknown_tid(tftpd: Tftpd) -> None:
    with RawClient(tftpd) as client, RawClient(tftpd) as stranger:
        client.ask(request(1, b"undionly.kpxe", tsize="0"))
        _, _, transfer_port = client.receive()
        stranger.sock.sendto(ack(0), transfer_port)
        opcode, rest, _ = stranger.receive()
        assert (opcode, error_of(rest)[0]) == (5, 5)
        client.sock.sendto(ack(0), transfer_port)
        opcode, rest, _ = client.receive()
        assert opcode == 3 and rest[:2] == b"\x00\x01"


def test_size_probe_then_the_real_request(tftpd: Tftpd) -> None:
    """Firmware asks with tsize, aborts with error 8, then asks again: both work."""
    with RawClient(tftpd) as client:
        client.ask(request(1, b"snponly.efi", tsize="0"))
        opcode, rest, sender = client.receive()
        assert opcode == 6
        assert f"tsize\0{(IPXE / 'snponly.efi').stat().st_size}\0".encode() in rest
        client.sock.sendto(struct.pack("!HH", 5, 8) + b"probe\0", sender)
    with RawClient(tftpd) as client:
        data, _ = client.download("snponly.efi", blksize="1468")
    assert data == (IPXE / "snponly.efi").read_bytes()
    assert "size probe" not in tftpd.log.read_text().lower()
