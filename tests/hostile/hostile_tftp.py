"""A seeded TFTP fuzzer: hostile first packets, hostile packets inside a transfer, floods.

Every first packet is sent from a fresh socket on a port no recent client had (CLIENT_PORTS),
so it is never taken for a retransmission,
and judged by one oracle: tftpd answers a datagram of 4..1024 bytes with opcode RRQ or WRQ
(a transfer, or an error) and drops everything else. Every packet that comes back is checked:
no forbidden bytes (a secret outside the root, the API token), and a file's first block is
the start of a file the root may serve. Transfers the fuzzer starts are aborted with an ERROR
at once, so they do not pile up. The cases themselves are made in hostile_tftp_cases.
"""

from __future__ import annotations

import errno
import itertools
import random
import selectors
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Final

from tests.hostile.hostile_tftp_cases import DATA, ERROR, OACK, RRQ, WRQ, transfer_noise
from tests.tftpd.tftpd_helpers import RawClient, Tftpd, ack, request

MAX_REQUEST: Final = 1024  # tftpd drops longer first packets
ANSWER_TIMEOUT: Final = 5.0
# Source ports for the fuzzer's clients, below Linux's ephemeral range (32768 up) and taken in
# turn: tftpd takes a request from the (address, port) of a transfer it still runs for a
# resend and ignores it (RFC 1350's transfer IDs), and a transfer abandoned by its client
# lingers until its resends time out, while the kernel's own choice of port may come back to
# that one within seconds (seen: one "no answer" in 8,000 cases).
CLIENT_PORTS: Final = range(20000, 32000)


def error(code: int, message: bytes = b"fuzz") -> bytes:
    return struct.pack("!HH", ERROR, code) + message + b"\0"


def expects_answer(packet: bytes) -> bool:
    return 4 <= len(packet) <= MAX_REQUEST and packet[:2] in (b"\0\1", b"\0\2")


@dataclass
class Tally:
    """What the fuzzer did and what went wrong; `crashes` must stay empty."""

    cases: dict[str, int] = field(default_factory=dict)
    datagrams: int = 0
    crashes: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    # Flood requests with no answer in time: UDP under a flood on a loaded machine may drop
    # them (the socket buffer overflows), which is no fault of tftpd's; reported, not failed.
    unanswered: int = 0

    def count(self, family: str) -> None:
        self.cases[family] = self.cases.get(family, 0) + 1

    @property
    def total(self) -> int:
        return sum(self.cases.values())


@dataclass
class Target:
    server: Tftpd
    served: dict[str, bytes]  # what the root may serve, by name
    forbidden: list[bytes]  # bytes no answer may ever hold
    tally: Tally = field(default_factory=Tally)
    _ports: itertools.cycle[int] = field(default_factory=lambda: itertools.cycle(CLIENT_PORTS))

    @property
    def address(self) -> tuple[str, int]:
        return self.server.host, self.server.port

    def client(self, timeout: float = ANSWER_TIMEOUT) -> RawClient:
        """A client on a source port no earlier client of this run used lately."""
        for port in self._ports:
            try:
                return RawClient(self.server, timeout=timeout, port=port)
            except OSError as err:
                if err.errno != errno.EADDRINUSE:
                    raise
        raise AssertionError("unreachable: the ports cycle for ever")

    def inspect(self, what: str, packet: bytes) -> None:
        for secret in self.forbidden:
            if secret in packet:
                self.tally.violations.append(f"{what}: an answer held forbidden bytes {secret!r}")

    def check_first_block(self, what: str, payload: bytes, name: str | None = None) -> None:
        """A first block must begin a file the root serves (that file, if known)."""
        files = [self.served[name]] if name is not None else list(self.served.values())
        if not any(content.startswith(payload) for content in files):
            self.tally.violations.append(f"{what}: block 1 is not from a served file")

    def alive(self, what: str) -> None:
        """The listener still answers: a WRQ gets its refusal."""
        with self.client(timeout=ANSWER_TIMEOUT) as probe:
            probe.ask(request(WRQ, b"alive"))
            try:
                opcode, _, _ = probe.receive()
            except TimeoutError:
                self.tally.crashes.append(f"tftpd stopped answering after {what}")
                return
        if opcode != ERROR:
            self.tally.crashes.append(f"after {what}, a WRQ got opcode {opcode}")


def first_packet(target: Target, family: str, packet: bytes, name: str | None = None) -> None:
    """Send one hostile first packet and judge what comes back."""
    target.tally.count(family)
    what = f"{family} {packet[:80]!r}"
    with target.client() as client:
        client.ask(packet)
        target.tally.datagrams += 1
        if not expects_answer(packet):
            client.ask(request(WRQ, b"sync"))  # answered at once: everything before is handled
        try:
            opcode, rest, sender = client.receive()
        except TimeoutError:
            target.tally.violations.append(f"{what}: no answer")
            return
        target.inspect(what, rest)
        if opcode in (DATA, OACK):
            if not expects_answer(packet):
                target.tally.violations.append(f"{what}: a dropped packet started a transfer")
            _first_block(target, client, what, packet, opcode, rest, sender, name)
            client.sock.sendto(error(0), sender)


def _first_block(
    target: Target,
    client: RawClient,
    what: str,
    packet: bytes,
    opcode: int,
    rest: bytes,
    sender: tuple[str, int],
    name: str | None,
) -> None:
    blksize = 512
    if opcode == OACK:
        options = _options(rest)
        _check_oack(target, what, packet, options, name)
        blksize = int(options.get("blksize", 512))
        client.sock.sendto(ack(0), sender)
        try:
            opcode, rest, _ = client.receive()
        except TimeoutError:
            target.tally.violations.append(f"{what}: no block 1 after ACK 0")
            return
        target.inspect(what, rest)
    if opcode != DATA or rest[:2] != b"\0\1":
        target.tally.violations.append(f"{what}: expected block 1, got opcode {opcode}")
        return
    payload = rest[2:]
    if len(payload) > blksize:
        target.tally.violations.append(f"{what}: block of {len(payload)} > blksize {blksize}")
    target.check_first_block(what, payload, name)


def _check_oack(
    target: Target, what: str, packet: bytes, options: dict[str, str], name: str | None
) -> None:
    """RFC 2347-2349: only options the client asked for, each within its range."""
    fields = packet[2:].split(b"\0")[2:-1]
    asked = {key.decode("ascii", "replace").lower() for key in fields[::2]}
    unasked = set(options) - asked
    if unasked:
        target.tally.violations.append(f"{what}: OACK holds options not asked for: {unasked}")
    limits = {"blksize": (8, 65464), "timeout": (1, 255)}
    for key, (low, high) in limits.items():
        if key in options and not low <= int(options[key]) <= high:
            target.tally.violations.append(f"{what}: OACK {key} {options[key]} out of range")
    if (
        "tsize" in options
        and name is not None
        and int(options["tsize"]) != len(target.served[name])
    ):
        target.tally.violations.append(f"{what}: OACK tsize {options['tsize']} is not the size")


def _options(rest: bytes) -> dict[str, str]:
    fields = rest.split(b"\0")[:-1]
    return {k.decode().lower(): v.decode() for k, v in zip(fields[::2], fields[1::2], strict=False)}


def hostile_transfer(target: Target, rng: random.Random, name: str) -> None:
    """Start a real transfer, send noise (and sometimes an ERROR) on its port, then finish it:
    the file arrives whole, or the transfer ended because the client said so."""
    target.tally.count("inside a transfer")
    content = target.served[name]
    blksize = rng.choice([512, 1468, 65464])
    aborts = rng.random() < 0.15
    what = f"transfer of {name} (blksize {blksize})"
    with target.client() as client:
        client.ask(request(RRQ, name.encode(), blksize=str(blksize), timeout="1"))
        target.tally.datagrams += 1
        received = bytearray()
        expected = 0  # the block to ACK next (0 = the OACK)
        while True:
            try:
                opcode, rest, sender = client.receive()
            except TimeoutError:
                target.tally.violations.append(f"{what}: no answer after block {expected}")
                return
            target.inspect(what, rest)
            if opcode == DATA:
                (block,) = struct.unpack("!H", rest[:2])
                if block != expected % 65536:
                    continue  # a resend of a block already had
                received += rest[2:]
            elif opcode != OACK:
                target.tally.violations.append(f"{what}: unexpected opcode {opcode}")
                return
            for noise in transfer_noise(rng, expected):
                client.sock.sendto(noise, sender)
                target.tally.datagrams += 1
            if aborts:
                client.sock.sendto(error(rng.choice([0, 1, 4, 8]), rng.randbytes(30)), sender)
                return
            client.sock.sendto(ack(expected % 65536), sender)
            if opcode == DATA and len(rest) - 2 < blksize:
                break
            expected += 1
    if bytes(received) != content:
        target.tally.violations.append(f"{what}: {len(received)} bytes, not the file")


# --- floods ---------------------------------------------------------------------------------


def flood(target: Target, count: int, sources: list[str], batch: int = 64) -> list[bytes]:
    """`count` RRQs from as many sockets, none of them ever acknowledged; returns the first
    answer each got. Sent in batches, each answered before the next, so the flood reaches
    tftpd instead of overflowing its socket buffer."""
    target.tally.count("flood")
    answers: list[bytes] = []
    sockets: list[socket.socket] = []
    try:
        for start in range(0, count, batch):
            group = []
            for i in range(start, min(start + batch, count)):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.bind((sources[i % len(sources)], 0))
                sock.sendto(request(RRQ, b"undionly.kpxe", timeout="1"), target.address)
                group.append(sock)
            target.tally.datagrams += len(group)
            with selectors.DefaultSelector() as selector:
                for sock in group:
                    selector.register(sock, selectors.EVENT_READ, data=sock)
                waiting = len(group)
                deadline = time.monotonic() + ANSWER_TIMEOUT
                while waiting and time.monotonic() < deadline:
                    for key, _ in selector.select(timeout=0.5):
                        sock = key.data
                        data = sock.recv(70000)
                        target.inspect("flood", data)
                        answers.append(data)
                        selector.unregister(sock)
                        waiting -= 1
            target.tally.unanswered += waiting
            sockets += group  # kept open until the end: each holds its transfer
    finally:
        for sock in sockets:
            sock.close()
    return answers


def _rest_of_transfer(client: RawClient) -> bytes | None:
    """The file of a transfer already asked for (blksize 1468), or None on an error."""
    received = bytearray()
    expected = 1
    while True:
        try:
            opcode, rest, sender = client.receive()
        except TimeoutError:
            return None
        if opcode == OACK:
            client.sock.sendto(ack(0), sender)
            continue
        if opcode != DATA:
            return None
        (block,) = struct.unpack("!H", rest[:2])
        if block == expected % 65536:
            received += rest[2:]
            expected += 1
        client.sock.sendto(ack(block), sender)
        if len(rest) - 2 < 1468:
            return bytes(received)


def retransmissions(target: Target, count: int) -> None:
    """The same RRQ `count` times from one socket: one transfer, which then completes."""
    target.tally.count("flood")
    with target.client() as client:
        for _ in range(count):
            client.ask(request(RRQ, b"inside.txt", blksize="1468"))
        target.tally.datagrams += count
        data = _rest_of_transfer(client)
    if data != target.served["inside.txt"]:
        target.tally.violations.append("repeated RRQ: the transfer did not complete")
