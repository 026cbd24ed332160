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
    try:
        await pidfd_ended(fd)
    finally:
        os.close(fd)


async def pidfd_ended(fd: int) -> None:
    """Until the process of pidfd `fd` ends; the caller keeps (and closes) the fd."""
    loop = asyncio.get_running_loop()
    ended = loop.create_future()

    def readable() -> None:
        # A reader handle already queued may still run once after a cancel.
        if not ended.done():
            ended.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await ended
    finally:
        loop.remove_reader(fd)
