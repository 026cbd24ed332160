"""A running tftpd for tests, and a raw TFTP client that can misbehave on purpose."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from libs.common import names
from tests.needs import need_command, unavailable
from tests.stack import run_service, start_nats, stop_process, wait_healthy

IPXE = Path("/usr/lib/ipxe")
BINARIES = ("undionly.kpxe", "ipxe.efi", "snponly.efi")


@dataclass
class Tftpd:
    host: str
    port: int
    nats_url: str
    data: Path
    log: Path


def need(*commands: str) -> None:
    for command in commands:
        need_command(command, {"tftp": "tftp-hpa"}.get(command, command))
    for name in BINARIES:
        if not (IPXE / name).is_file():
            unavailable(f"{IPXE / name} is missing (Debian: ipxe)")


@contextlib.contextmanager
def start_tftpd(
    tmp: Path,
    prepare: dict[str, Path] | None = None,
    seed: Callable[[str], Coroutine[Any, Any, None]] | None = None,
    flags: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> Iterator[Tftpd]:
    """NATS plus `wolfpack run tftpd` (with `flags`, and WOLFPACK_ variables `env`); `prepare`
    puts symlinks (name → target) in the root, `seed` gets the NATS URL before tftpd starts."""
    data = tmp / "data"
    root = data / "tftp"
    root.mkdir(parents=True, exist_ok=True)
    for name, target in (prepare or {}).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).symlink_to(target)
    with start_nats(tmp / "nats") as nats:
        if seed is not None:
            asyncio.run(seed(nats.url))
        process, http_port, log = run_service("tftpd", data, nats.url, *flags, env=env)
        offset = http_port - names.PORTS["tftpd"]
        try:
            wait_healthy(f"http://127.0.0.1:{http_port}", process, log)
            yield Tftpd("127.0.0.1", names.TFTP_PORT + offset, nats.url, data, log)
        finally:
            stop_process(process)


def request(opcode: int, name: bytes, mode: bytes = b"octet", **options: str) -> bytes:
    packet = struct.pack("!H", opcode) + name + b"\0" + mode + b"\0"
    for key, value in options.items():
        packet += key.encode() + b"\0" + value.encode() + b"\0"
    return packet


def ack(block: int) -> bytes:
    return struct.pack("!HH", 4, block)


class RawClient:
    """One UDP socket; `ask` sends a request, `receive` returns (opcode, rest, sender)."""

    def __init__(
        self, server: Tftpd, local: str = "127.0.0.1", timeout: float = 5, port: int = 0
    ) -> None:
        self.server = (server.host, server.port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.bind((local, port))
        except OSError:
            self.sock.close()
            raise
        self.sock.settimeout(timeout)

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def ask(self, packet: bytes) -> None:
        self.sock.sendto(packet, self.server)

    def receive(self) -> tuple[int, bytes, tuple[str, int]]:
        data, sender = self.sock.recvfrom(70000)
        return struct.unpack("!H", data[:2])[0], data[2:], sender

    def download(self, name: str, **options: str) -> tuple[bytes, dict[str, str]]:
        """A whole read transfer; returns the data and the OACK's options (empty if none)."""
        self.ask(request(1, name.encode(), b"octet", **options))
        blksize = 512
        received = bytearray()
        acked: dict[str, str] = {}
        expected = 1
        while True:
            opcode, rest, sender = self.receive()
            if opcode == 5:
                raise RuntimeError(f"error {rest[:2].hex()}: {rest[2:-1].decode()}")
            if opcode == 6:
                fields = rest.split(b"\0")[:-1]
                acked = {
                    k.decode(): v.decode() for k, v in zip(fields[::2], fields[1::2], strict=True)
                }
                blksize = int(acked.get("blksize", 512))
                self.sock.sendto(ack(0), sender)
                continue
            assert opcode == 3, opcode
            (block,) = struct.unpack("!H", rest[:2])
            if block == expected % 65536:
                received += rest[2:]
                expected += 1
            self.sock.sendto(ack(block), sender)
            if len(rest) - 2 < blksize:
                return bytes(received), acked


def error_of(rest: bytes) -> tuple[int, str]:
    """An ERROR packet's (code, message) from what follows the opcode."""
    return struct.unpack("!H", rest[:2])[0], rest[2:].rstrip(b"\0").decode()
