"""The runtime overlay pushed to the node (`GET /runtime/{mac}?callback=PORT`).

Secure mode wants proof that root on the node asks: a privileged source port, which curl can
bind and busybox's wget and nc cannot. Listening on a privileged port is the same proof, and
busybox's `nc -l -p PORT` can: the agent listens, asks with wget, and bootd connects back to
the address the request came from and sends the archive there.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Final

from libs.common.errors import Conflict, Invalid

CONNECT_WITHIN: Final = 2.0  # the listener starts beside the request: give it a moment
RETRY_EVERY: Final = 0.1
SEND_WITHIN: Final = 60.0


def callback_port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise Invalid(f"callback must be a TCP port number, not {text!r}", field="callback")
    return port


async def push(host: str, port: int, blob: Path) -> int:
    """Send `blob` to host:port; the bytes sent. Conflict if nothing listens there."""
    deadline = asyncio.get_running_loop().time() + CONNECT_WITHIN
    while True:
        try:
            _, writer = await asyncio.open_connection(host, port)
            break
        except OSError as err:
            if asyncio.get_running_loop().time() >= deadline:
                raise Conflict(
                    f"nothing listens on {host} port {port} for the runtime overlay ({err})",
                    field="callback",
                ) from None
            await asyncio.sleep(RETRY_EVERY)
    data = await asyncio.to_thread(blob.read_bytes)
    try:
        writer.write(data)
        await asyncio.wait_for(writer.drain(), SEND_WITHIN)
    finally:
        writer.close()
        with contextlib.suppress(OSError):  # the node closed first: it has what was sent
            await writer.wait_closed()
    return len(data)
