"""The fuzzer's cases, each family a function of a seeded `random.Random`: path tricks,
option abuse, broken first packets, and noise to send inside a transfer."""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from typing import Final

from tests.tftpd.tftpd_helpers import ack, request

RRQ, WRQ, DATA, ACK, ERROR, OACK = 1, 2, 3, 4, 5, 6


def raw_request(opcode: int, name: bytes, mode: bytes, options: list[tuple[bytes, bytes]]) -> bytes:
    """A request with options as given: repeated, empty or odd ones included."""
    packet = struct.pack("!H", opcode) + name + b"\0" + mode + b"\0"
    return packet + b"".join(k + b"\0" + v + b"\0" for k, v in options)


# --- path tricks ----------------------------------------------------------------------------

PREFIXES: Final = [
    b"", b"/", b"//", b"./", b"../", b"../../../../", b"/..", b"/../", b"subdir/../",
    b"..\\..\\", b"%2e%2e/", b"....//", b"~/", b"inside.txt/", b"./././", b" ", b"\\",
]  # fmt: skip
TARGETS: Final = [
    b"etc/passwd", b"etc/shadow", b"api.token", b"../api.token", b"leak", b"outdir/secret.txt",
    b"nested/up", b"loop", b"fifo", b"subdir", b"inside.txt", b"subdir/inside2.txt",
    b"undionly.kpxe", b"proc/self/environ", b"/proc/self/environ", b"/dev/zero", b".", b"",
    b"nats/jetstream", b"../nats", b"/root/.bashrc", b"UNDIONLY.KPXE",
]  # fmt: skip
SUFFIXES: Final = [b"", b"/", b"/.", b"/..", b"\0junk", b"%00", b" ", b"\t", b"\r\n", b"?", b"*"]
ODD_BYTES: Final = [b"\xc0\xae\xc0\xae/", b"\xc0\xaf", b"\xe2\x80\xae", "ünï/".encode(), b"\xff"]


def path_trick(rng: random.Random) -> bytes:
    roll = rng.random()
    if roll < 0.08:  # a very long name, near and past the request limit
        unit = rng.choice([b"a/", b"../", b"./", b"x" * 50 + b"/"])
        return unit * rng.randrange(100, 600) + rng.choice(TARGETS)
    if roll < 0.16:  # bytes a file name should never hold
        return rng.choice(PREFIXES) + rng.choice(ODD_BYTES) + rng.choice(TARGETS)
    depth = rng.randrange(1, 4)
    name = b"".join(rng.choice(PREFIXES) for _ in range(depth)) + rng.choice(TARGETS)
    return name + rng.choice(SUFFIXES)


# --- option negotiation ---------------------------------------------------------------------

VALUES: Final = {
    b"blksize": [b"0", b"7", b"8", b"9", b"512", b"1468", b"65464", b"65465", b"65536",
                 b"9" * 30, b"-1", b"+512", b" 512", b"512 ", b"0x200", "٥١٢".encode(),
                 b"1e3", b"", b"00000008"],
    b"tsize": [b"0", b"-1", b"-0", b"18446744073709551616", b"abc", b"", b"9" * 40],
    b"timeout": [b"0", b"1", b"255", b"256", b"-1", b"1.5", b"", b"9" * 25],
    b"windowsize": [b"0", b"1", b"65535", b"65536"],
    b"multicast": [b"", b"1,2,3"],
}  # fmt: skip
NAMES: Final = [b"blksize", b"BLKSIZE", b"BlkSize", b"tsize", b"TSIZE", b"timeout", b"windowsize",
                b"multicast", b"utimeout", b"rollover", b"x" * 200]  # fmt: skip
MODES: Final = [b"octet", b"OCTET", b"netascii", b"mail", b"binary", b"", b"octet\xff"]


def option_abuse(rng: random.Random, names: list[str]) -> tuple[bytes, str]:
    """A request for a served file with an abusive set of options."""
    name = rng.choice(names)
    options: list[tuple[bytes, bytes]] = []
    for _ in range(rng.randrange(1, 8)):
        key = rng.choice(NAMES)
        value = rng.choice(VALUES.get(key.lower(), [b"1", b"", b"x" * 300]))
        options.append((key, value))
        if rng.random() < 0.2:  # the same option again, with another value
            options.append((key, rng.choice(VALUES.get(key.lower(), [b"2"]))))
    packet = raw_request(RRQ, name.encode(), rng.choice(MODES), options)
    roll = rng.random()
    if roll < 0.1:  # a dangling option name
        packet += rng.choice(NAMES) + b"\0"
    elif roll < 0.15:  # an empty option name
        packet += b"\0" + b"512\0"
    elif roll < 0.2:  # many options, up to the limit and past it
        packet += b"opt\0v\0" * rng.randrange(50, 200)
    return packet, name


# --- broken first packets -------------------------------------------------------------------


def broken_packet(rng: random.Random) -> bytes:
    valid = request(RRQ, b"undionly.kpxe", blksize="1468", tsize="0")
    roll = rng.randrange(7)
    if roll == 0:  # truncated anywhere
        return valid[: rng.randrange(0, len(valid))]
    if roll == 1:  # unterminated: no NUL at all, or only one
        body = valid[2:].replace(b"\0", b"")
        if rng.random() < 0.5:
            body = body.replace(b"kpxe", b"kpxe\0", 1)
        return valid[:2] + body
    if roll == 2:  # a few bytes flipped
        packet = bytearray(valid)
        for _ in range(rng.randrange(1, 4)):
            packet[rng.randrange(len(packet))] = rng.randrange(256)
        return bytes(packet)
    if roll == 3:  # every opcode, with a request's body
        return struct.pack("!H", rng.randrange(65536)) + valid[2:]
    if roll == 4:  # oversized: up to the largest UDP datagram
        return valid + rng.randbytes(rng.randrange(1024, 65000))
    if roll == 5:  # DATA, ACK, ERROR, OACK sent to the request port
        opcode = rng.choice([DATA, ACK, ERROR, OACK])
        return struct.pack("!HH", opcode, rng.randrange(65536)) + rng.randbytes(rng.randrange(20))
    return valid[:2] + b"\0" * rng.randrange(2, 40)  # names and modes all empty


def transfer_noise(rng: random.Random, block: int) -> list[bytes]:
    """Packets a client should not send on a transfer port, none of them a valid ERROR."""
    choices: list[Callable[[], bytes]] = [
        lambda: ack(rng.choice([block + 1, block + 2, 65535, (block + 30000) % 65536])),
        lambda: ack(block) + rng.randbytes(rng.randrange(1, 600)),  # an ACK with junk after it
        lambda: struct.pack("!H", ACK) + rng.randbytes(rng.randrange(0, 2)),  # truncated ACK
        lambda: struct.pack("!HH", DATA, block) + rng.randbytes(rng.randrange(0, 600)),
        lambda: request(RRQ, b"inside.txt"),
        lambda: request(WRQ, b"inside.txt"),
        lambda: struct.pack("!H", OACK) + b"blksize\0" + b"8\0",
        lambda: struct.pack("!H", rng.randrange(7, 65536)) + rng.randbytes(rng.randrange(0, 30)),
        lambda: b"",
        lambda: rng.randbytes(1),
        lambda: struct.pack("!H", ERROR) + b"\0",  # an ERROR too short to parse
    ]
    return [rng.choice(choices)() for _ in range(rng.randrange(1, 5))]
