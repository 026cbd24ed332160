"""Waiting for a child process without leaving it behind."""

from __future__ import annotations

import asyncio
import contextlib


async def communicate_or_kill(
    process: asyncio.subprocess.Process, data: bytes | None = None
) -> tuple[bytes, bytes]:
    """`process.communicate(data)`; if the wait is cancelled or fails, the process is killed
    and reaped before the error goes on, so no child outlives its caller."""
    try:
        return await process.communicate(data)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
