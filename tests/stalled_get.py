"""A client that asks bootd for a big blob, reads the answer's head and then stops reading: a
stuck or very slow node holding a transfer slot (admission control, stall cut-off, iPXE's
retry). A tiny receive buffer keeps the server's writes from draining into the socket."""

from __future__ import annotations

import asyncio
import socket
from urllib.parse import urlsplit


class StalledGet:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.head = b""

    @classmethod
    async def ask(cls, url: str, path: str = "", *headers: str) -> StalledGet:
        """GET `path` at `url` (or `url`'s own path and query) and read the answer's head."""
        parts = urlsplit(url)
        if not path:
            path = parts.path + (f"?{parts.query}" if parts.query else "")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (parts.hostname, parts.port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
        lines = [f"GET {path} HTTP/1.1", f"Host: {parts.netloc}", *headers, "", ""]
        writer.write("\r\n".join(lines).encode())
        stalled = cls(reader, writer)
        stalled.head = await reader.readuntil(b"\r\n\r\n")
        return stalled

    async def read_all(self) -> int:
        """Read the rest of the body (as its Content-Length says); its length."""
        length = int(self.head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await self.reader.readexactly(length)
        return length

    async def rest(self) -> int:
        """Read what is left until the server closes; how many bytes that was."""
        got = 0
        async with asyncio.timeout(30):
            while chunk := await self.reader.read(1 << 20):
                got += len(chunk)
        return got

    def close(self) -> None:
        self.writer.close()
