"""One HTTP/1.1 GET from a chosen source port (httpx cannot choose one): the way a node's agent
fetches its runtime overlay in secure mode. We run as root, so ports < 1024 can be bound."""

from __future__ import annotations

import asyncio
import errno
import random
import socket
from urllib.parse import urlsplit


def _bind_socket(low: int, high: int) -> socket.socket:
    for port in random.sample(range(low, high), high - low):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as err:
            sock.close()
            if err.errno in (errno.EADDRINUSE, errno.EACCES):
                if err.errno == errno.EACCES:
                    raise
                continue
            raise
        return sock
    raise OSError(errno.EADDRINUSE, f"no free source port in {low}-{high}")


def _get(url: str, low: int, high: int) -> tuple[int, bytes]:
    parts = urlsplit(url)
    sock = _bind_socket(low, high)
    try:
        sock.settimeout(10)
        sock.connect((parts.hostname, parts.port))
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        request = f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n"
        sock.sendall(request.encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    finally:
        sock.close()
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, body


async def get_from_port(url: str, low: int, high: int) -> tuple[int, bytes]:
    """(status, body) of GET `url` sent from a source port in [low, high)."""
    return await asyncio.to_thread(_get, url, low, high)
