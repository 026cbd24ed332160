"""Admission control for boot storms: at most `limit` big transfers (kernels, images) at once;
a node over the limit is told at once to come back later (`503` with `Retry-After`).

The waits are spread, so deferred nodes do not return in lockstep: a node is given a whole
number of seconds drawn uniformly from 1 to 1 + the time the queue ahead of it needs to drain
(nodes already told to come back and not yet due, times the recent transfer time, over the
limit), at most MAX_RETRY. Nodes then return at about the rate slots free up.
"""

from __future__ import annotations

import heapq
import random
import time
from collections.abc import Callable
from typing import Final

import msgspec

MAX_RETRY: Final = 60
# What a transfer is assumed to take before one has finished; then an average of recent ones.
FIRST_GUESS: Final = 1.0
WEIGHT: Final = 0.2


class AdmissionCounts(msgspec.Struct, kw_only=True):
    # Transfers allowed at once (0: no limit), under way now, and the most seen at once.
    limit: int
    active: int
    peak: int
    # Transfers started, and requests answered 503 with Retry-After.
    admitted: int
    deferred: int
    # Deferred nodes not yet due back.
    waiting: int
    # Recent seconds per transfer (what the Retry-After spread is built on).
    transfer_seconds: float


class Admission:
    """Counts transfers in and out; `enter` says whether one may start."""

    def __init__(
        self,
        limit: int,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 0:
            raise ValueError(f"limit must be 0 (none) or more, not {limit}")
        self.limit = limit
        self._rng = rng or random.Random()
        self._clock = clock
        self._due: list[float] = []  # when deferred nodes come back (a heap)
        self._average = FIRST_GUESS
        self._active = self._peak = self._admitted = self._deferred = 0

    def enter(self) -> int | None:
        """None: the transfer may start (call `leave` when it ends); else the seconds to
        tell the node to wait (Retry-After)."""
        if self.limit and self._active >= self.limit:
            return self._defer()
        self._active += 1
        self._admitted += 1
        self._peak = max(self._peak, self._active)
        return None

    def leave(self, seconds: float) -> None:
        """A transfer that took `seconds` ended (sent, failed or cut)."""
        self._active -= 1
        self._average += WEIGHT * (seconds - self._average)

    def counts(self) -> AdmissionCounts:
        self._forget_due(self._clock())
        return AdmissionCounts(
            limit=self.limit,
            active=self._active,
            peak=self._peak,
            admitted=self._admitted,
            deferred=self._deferred,
            waiting=len(self._due),
            transfer_seconds=round(self._average, 3),
        )

    def _defer(self) -> int:
        now = self._clock()
        self._forget_due(now)
        drain = (len(self._due) + 1) * self._average / self.limit
        seconds = int(1 + self._rng.uniform(0, min(drain, MAX_RETRY - 1)))
        heapq.heappush(self._due, now + seconds)
        self._deferred += 1
        return seconds

    def _forget_due(self, now: float) -> None:
        while self._due and self._due[0] <= now:
            heapq.heappop(self._due)
