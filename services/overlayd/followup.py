"""What may lag behind a wave, and when its turn comes: the nodes whose all-node files (hosts)
wait to be rendered again, and (hostconfig.HostWriter) the host files.

Its turn comes once changes have paused for QUIET seconds, or MAX seconds after it started
waiting: a stream of edits is not slowed down by a follow-up after each of them, and still
gets one every MAX seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Final

from services.overlayd.pending import Pending

QUIET: Final = 0.25
MAX: Final = 10.0
CHUNK: Final = 500  # nodes per follow-up render: a change waits for the chunk being rendered


class FollowUp:
    def __init__(self) -> None:
        self.nodes: set[str] = set()
        self.since = 0.0  # when it started waiting
        # Node edits whose follow-up (engine.plan's: the nodes reading `nodes`) is still to be
        # worked out: it looks at every node, so it is done when the follow-up runs.
        self.unplanned = False

    def waits(self) -> bool:
        return bool(self.nodes) or self.unplanned

    def add(self, nodes: Iterable[str] = (), *, unplanned: bool = False) -> None:
        if not self.waits():
            self.since = time.monotonic()
        self.nodes.update(nodes)
        self.unplanned = self.unplanned or unplanned

    def size(self, everyone: int) -> int:
        """Nodes waiting (all of them may, while the follow-up is unplanned)."""
        return everyone if self.unplanned else len(self.nodes)

    def postpone(self) -> None:
        """Interrupted: what is left waits for its turn again."""
        self.since = time.monotonic()


async def turn(pending: Pending, since: float) -> bool:
    """Wait for the turn of work waiting since `since`; False if a change came first."""
    while True:
        waited = time.monotonic() - since
        left = min(QUIET - pending.quiet_for(), MAX - waited)
        if left <= 0:
            return True
        try:
            await asyncio.wait_for(pending.arrived.wait(), left)
        except TimeoutError:
            continue
        return False
