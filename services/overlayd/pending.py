"""Changes waiting for the next wave, and when that wave should start.

A handful of changes (SMALL or fewer: an edit, a few) starts a wave at once: waiting would only
add to their latency. More is a burst (a bulk add of 10,000 nodes), coalesced into one wave
rather than 10,000: it starts once no event has come for QUIET seconds, or MAX_DELAY after the
first change it holds.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Final

from libs.common.models.overlay_api import WaveReport
from services.overlayd.engine import Change

SMALL: Final = 8
QUIET: Final = 0.05
MAX_DELAY: Final = 0.5


@dataclass
class Batch:
    """The changes one wave answers, in arrival order (each once)."""

    changes: list[Change] = field(default_factory=list)
    # Requests waiting for this wave's report (`POST /overlays:build`).
    waiters: list[asyncio.Future[WaveReport]] = field(default_factory=list)
    # Changes that came as events (the rest were build requests).
    events: int = 0
    # A build: render every node planned in one pass (nothing deferred).
    build: bool = False
    # Forget every remembered render first (a full build).
    fresh: bool = False

    def edited_nodes(self) -> list[str]:
        """Nodes named by a change, in the order their changes came."""
        return [c.name for c in self.changes if c.kind == "node"]


class Pending:
    def __init__(self, quiet: float = QUIET, max_delay: float = MAX_DELAY) -> None:
        self.quiet = quiet
        self.max_delay = max_delay
        self._batch = Batch()
        self._seen: set[Change] = set()
        self._first_at = 0.0
        self._last_at = 0.0
        self._now = False  # a build request: no waiting
        self.arrived = asyncio.Event()

    def __len__(self) -> int:
        return len(self._batch.changes)

    def quiet_for(self) -> float:
        """Seconds since the last change came."""
        return time.monotonic() - self._last_at

    def add(self, change: Change) -> None:
        now = time.monotonic()
        if not self._batch.changes and not self._batch.waiters:
            self._first_at = now
        self._last_at = now
        self._batch.events += 1
        if change not in self._seen:
            self._seen.add(change)
            self._batch.changes.append(change)
        self.arrived.set()

    def request(self, changes: list[Change], *, fresh: bool = False) -> asyncio.Future[WaveReport]:
        """A build: these changes, rendered in the next wave, at once; its report comes back."""
        for change in changes:
            if change not in self._seen:
                self._seen.add(change)
                self._batch.changes.append(change)
        future: asyncio.Future[WaveReport] = asyncio.get_running_loop().create_future()
        if not self._batch.changes and not self._batch.waiters:
            self._first_at = time.monotonic()
        self._batch.waiters.append(future)
        self._batch.build = True
        self._batch.fresh = self._batch.fresh or fresh
        self._now = True
        self.arrived.set()
        return future

    async def settled(self) -> None:
        """Return when the batch should be rendered (see the module's docstring)."""
        await asyncio.sleep(0)  # let the handler of the rest of a fetched batch note it
        while not self._now and len(self._batch.changes) > SMALL:
            now = time.monotonic()
            wait = min(self._last_at + self.quiet, self._first_at + self.max_delay) - now
            if wait <= 0:
                return
            await asyncio.sleep(wait)

    def take(self) -> Batch:
        batch, self._batch = self._batch, Batch()
        self._seen = set()
        self._now = False
        self.arrived.clear()
        return batch

    def put_back(self, batch: Batch) -> None:
        """A wave failed: its changes go first into the next one."""
        merged = Batch(
            changes=list(batch.changes),
            waiters=batch.waiters + self._batch.waiters,
            events=batch.events + self._batch.events,
            build=batch.build or self._batch.build,
            fresh=batch.fresh or self._batch.fresh,
        )
        seen = set(merged.changes)
        for change in self._batch.changes:
            if change not in seen:
                seen.add(change)
                merged.changes.append(change)
        self._batch, self._seen = merged, seen
        if not self._first_at:
            self._first_at = time.monotonic()
        self.arrived.set()
