"""Waiting out a full store: a wave whose archives found no space is tried again as soon as
space is freed (the store's file system gains FREED bytes, looked at every POLL seconds), and
at the latest after a delay that doubles from FIRST to LAST while the disk stays full, so a
full disk costs a render attempt a minute, not a render loop."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Final

from libs.common.store.full import free_bytes

FIRST: Final = 1.0
LAST: Final = 60.0
POLL: Final = 0.5
FREED: Final = 1 << 20


class SpaceWait:
    def __init__(
        self, root: Path, *, first: float = FIRST, last: float = LAST, poll: float = POLL
    ) -> None:
        self.root = Path(root)
        self._first = first
        self._last = last
        self._poll = poll
        self._delay = first

    async def wait(self, baseline: int | None = None) -> None:
        """Until FREED more bytes than `baseline` (free when the write failed; default: now)
        are free on the store's file system, or the current delay is over."""
        start = free_bytes(self.root) if baseline is None else baseline
        deadline = time.monotonic() + self._delay
        self._delay = min(self._delay * 2, self._last)
        while (left := deadline - time.monotonic()) > 0:
            if free_bytes(self.root) >= start + FREED:
                return
            # Polled: the kernel tells no one when a file system gains space.
            await asyncio.sleep(min(self._poll, left))

    def recovered(self) -> None:
        """A store write went through: the next full disk starts with the short delay."""
        self._delay = self._first
