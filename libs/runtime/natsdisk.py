"""nats-server after a full disk. A stream whose write failed for want of space refuses every
later write, even once space is back, until nats-server restarts (measured with 2.15; see
docs/reliability.md, "Disk full"). The server says so only in its log: each refused write
logs "no space left on device" again. So watch the log, and once a line says it and the store
has room again, the keeper restarts the server.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Final

from libs.common.storefull import free_bytes

# What nats-server logs for a store write the disk refused (ENOSPC, EDQUOT).
NO_SPACE: Final = re.compile(rb"no space left on device|disk quota exceeded")
# Room the store needs before a restart is worth it: a restart into a still-full disk only
# leads to the next refused write.
ROOM: Final = 1 << 20
POLL: Final = 0.5


class LogTail:
    """The whole lines appended to a log file since this was made."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._offset = self._size()

    def _size(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def new_lines(self) -> list[bytes]:
        size = self._size()
        if size < self._offset:  # truncated or replaced: read the new file from its start
            self._offset = 0
        try:
            with self.path.open("rb") as log:
                log.seek(self._offset)
                chunk = log.read(size - self._offset)
        except OSError:
            return []
        whole = chunk[: chunk.rfind(b"\n") + 1]  # a half-written line waits for its end
        self._offset += len(whole)
        return whole.splitlines()


async def refused_for_space(
    log_path: Path, store: Path, *, room: int = ROOM, poll: float = POLL
) -> str:
    """Wait until nats-server logs a store write refused for want of space (a line written
    after this call) and the file system of `store` has `room` bytes free again; that line."""
    tail = LogTail(log_path)
    found: bytes | None = None
    while True:
        # Polled: neither the log nor the file system tells anyone when it changes.
        await asyncio.sleep(poll)
        if found is None:
            found = next((line for line in tail.new_lines() if NO_SPACE.search(line)), None)
        if found is not None and free_bytes(store) >= room:
            return found.decode(errors="replace").strip()
