"""Raw HTTP/1.1 over a socket, for requests no HTTP client library will send: broken request
lines, oversized heads, hostile ranges, bodies where none belong, requests left half-sent.

tests/bootd/rawhttp.py sends one well-formed GET from a chosen source port; these send bytes
as given and read every answer that comes back, or notice the connection was closed.
"""

from __future__ import annotations

import contextlib
import re
import socket
from dataclasses import dataclass, field
from typing import Final

STATUS_LINE: Final = re.compile(rb"HTTP/1\.[01] (\d{3})[^\r\n]*\r\n")
TIMEOUT: Final = 10.0


@dataclass
class Answer:
    """What came back: the first response (None if the server closed without one), the status
    of every response on the connection, and the first response's head and body."""

    status: int | None
    statuses: list[int] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def refused(self) -> bool:
        """A clear refusal: a 4xx, or the connection closed without an answer."""
        return self.status is None or 400 <= self.status < 500

    @property
    def server_error(self) -> bool:
        return any(status >= 500 for status in self.statuses)


def exchange(
    port: int, raw: bytes, *, host: str = "127.0.0.1", head: bool = False, end: bool = False
) -> Answer:
    """Send `raw` and read until the server closes (requests should say `Connection: close`);
    `end` also ends the sending side, for requests the server would otherwise wait on.
    TimeoutError if it neither answers nor closes within TIMEOUT: a hang is a bug."""
    with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
        # The server may refuse and close while a large request is still going out.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(raw)
            if end:
                sock.shutdown(socket.SHUT_WR)
        data = _read_all(sock)
    return parse(data, head=head)


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        except TimeoutError:
            raise TimeoutError(f"no answer and no close within {TIMEOUT} s") from None
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def parse(data: bytes, *, head: bool = False) -> Answer:
    first = STATUS_LINE.match(data)
    if first is None:
        return Answer(status=None)
    statuses = [int(m.group(1)) for m in STATUS_LINE.finditer(data)]
    head_text, _, rest = data.partition(b"\r\n\r\n")
    headers: dict[str, str] = {}
    for line in head_text.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        headers[name.decode("latin-1").strip().lower()] = value.decode("latin-1").strip()
    length = int(headers.get("content-length", len(rest)))
    body = b"" if head else rest[:length]
    return Answer(status=int(first.group(1)), statuses=statuses, headers=headers, body=body)


def get(path: str, *extra: str, method: str = "GET", body: bytes = b"") -> bytes:
    """A request whose parts are as given (the path is not encoded)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *extra, "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def half_sent(port: int, raw: bytes, *, host: str = "127.0.0.1") -> socket.socket:
    """A connection that sent `raw` (a request's start) and then goes quiet."""
    sock = socket.create_connection((host, port), timeout=TIMEOUT)
    sock.sendall(raw)
    return sock
