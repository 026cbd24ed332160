"""nats-server after a full disk. A stream whose write failed for want of space refuses every
later write, even once space is back, until nats-server restarts (measured with 2.15; see
docs/reliability.md, "Disk full"). The server says so only in its log: each refused write
logs "no space left on device" again. So watch the log, and once a line says it and the store
has room again, the keeper restarts the server.

"Room" is tried, not computed from statvfs: nats-server runs as the same user as `wolfpack
up`, and root may write into ext4's reserved blocks (free bytes read 0 long before root's
writes fail), a quota (EDQUOT) or a lack of inodes refuses writes with bytes to spare.
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

# What nats-server logs for a store write the disk refused (ENOSPC, EDQUOT).
NO_SPACE: Final = re.compile(rb"no space left on device|disk quota exceeded")
# Room the store needs before a restart is worth it: a restart into a still-full disk only
# leads to the next refused write.
ROOM: Final = 1 << 20
POLL: Final = 0.5


class LogTail:
    """The whole lines appended to a log file after `offset` (default: its end now)."""

    def __init__(self, path: Path, offset: int | None = None) -> None:
        self.path = Path(path)
        self._offset = self._size() if offset is None else offset

    @staticmethod
    def end_of(path: Path) -> int:
        """Where lines written from now on will start."""
        return LogTail(path)._offset

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


def has_room(folder: Path, size: int = ROOM) -> bool:
    """Whether this process can create a file of `size` bytes in `folder` now (it is removed
    again); False when the file system or a quota refuses it, or the folder cannot be written
    at all (then nats-server cannot write there either)."""
    try:
        fd, name = tempfile.mkstemp(prefix=".room-", dir=folder)
    except OSError:
        return False
    try:
        try:
            os.posix_fallocate(fd, 0, size)
        except OSError as err:
            if err.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise
            os.pwrite(fd, bytes(size), 0)  # a file system without fallocate
            os.fsync(fd)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
        os.unlink(name)


@dataclass(frozen=True)
class Refusal:
    line: str  # what nats-server logged
    seen_at: float  # time.monotonic() when it was read


async def refused_for_space(
    log_path: Path,
    store: Path,
    *,
    offset: int | None = None,
    room: int = ROOM,
    poll: float = POLL,
) -> Refusal:
    """Wait until nats-server logs a store write refused for want of space (a line past
    `offset`, default the log's end now) and a file of `room` bytes fits in `store` again."""
    tail = LogTail(log_path, offset)
    found: Refusal | None = None
    while True:
        # Polled: neither the log nor the file system tells anyone when it changes.
        await asyncio.sleep(poll)
        if found is None:
            line = next((line for line in tail.new_lines() if NO_SPACE.search(line)), None)
            if line is not None:
                found = Refusal(line.decode(errors="replace").strip(), time.monotonic())
        if found is not None and await asyncio.to_thread(has_room, store, room):
            return found
