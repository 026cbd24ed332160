"""Waiting for any process to end, not only a child: its pidfd turns readable when it does
(Linux 5.3+), an event rather than a poll of /proc."""

from __future__ import annotations

import asyncio
import os


async def process_ended(pid: int) -> None:
    """Until `pid` ends (at once if there is no such process)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    ended = loop.create_future()
    loop.add_reader(fd, ended.set_result, None)
    try:
        await ended
    finally:
        loop.remove_reader(fd)
        os.close(fd)
