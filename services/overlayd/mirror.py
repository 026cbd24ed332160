"""One KV bucket kept in memory by a watch, and a way to wait until it has caught up with an
event: an event names a revision (the bucket's stream sequence), and the watch delivers the
bucket in sequence order, so once it has passed that revision it holds that write or a newer
one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Callable
from typing import Final, Generic, Protocol, TypeVar

import msgspec

log = logging.getLogger("wolfpack.overlayd")

T = TypeVar("T", bound=msgspec.Struct)
T_co = TypeVar("T_co", bound=msgspec.Struct, covariant=True)

# How long an event waits for the watch before reading the key itself.
CATCH_UP_WAIT: Final = 2.0


class WatchedBucket(Protocol[T_co]):
    """The narrow part of libs.common.bus.kv.Bucket a mirror needs."""

    @property
    def name(self) -> str: ...
    async def get_or_none(self, key: str) -> T_co | None: ...
    async def revision(self, key: str) -> int | None: ...
    def watch(
        self, ready: asyncio.Event | None = None
    ) -> AsyncGenerator[tuple[str, T_co | None, int], None]: ...


class Mirror(Generic[T]):
    def __init__(self, bucket: WatchedBucket[T]) -> None:
        self.bucket = bucket
        self.items: dict[str, T] = {}
        self.revisions: dict[str, int] = {}
        # Highest bucket revision the watch has delivered.
        self.seen = 0
        # Called with the key whenever the mirror changes.
        self.on_change: Callable[[str], None] | None = None
        self._advanced = asyncio.Condition()
        self._waiters = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Load the current values (returns once they are all in), then follow changes."""
        ready = asyncio.Event()
        self._task = asyncio.create_task(self._follow(ready), name=f"mirror {self.bucket.name}")
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait({self._task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if self._task.done():
            self._task.result()  # the watch failed before it was ready: say why

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _follow(self, ready: asyncio.Event) -> None:
        while True:
            try:
                async with contextlib.aclosing(self.bucket.watch(ready)) as changes:
                    async for key, value, revision in changes:
                        self._apply(key, value, revision)
                        self.seen = max(self.seen, revision)
                        if self._waiters:
                            async with self._advanced:
                                self._advanced.notify_all()
            except asyncio.CancelledError:
                raise
            except Exception:
                if not ready.is_set():
                    raise
                log.exception("watch of %s failed; starting it again", self.bucket.name)
                await asyncio.sleep(1)

    def _apply(self, key: str, value: T | None, revision: int) -> None:
        if revision < self.revisions.get(key, 0):
            return  # an older write than one already applied (read directly by catch_up)
        if value is None:
            self.revisions.pop(key, None)
            if self.items.pop(key, None) is None:
                return
        else:
            self.items[key] = value
            self.revisions[key] = revision
        if self.on_change is not None:
            self.on_change(key)

    async def caught_up(self, key: str, revision: int, *, deleted: bool = False) -> None:
        """Make sure the mirror reflects `key` at `revision` or later; `deleted`: that the key
        written at `revision` is gone (or was written again since)."""

        def done() -> bool:
            if deleted:
                return key not in self.items or self.revisions.get(key, 0) > revision
            return self.revisions.get(key, 0) >= revision or self.seen >= revision

        if done():
            return
        self._waiters += 1
        try:
            async with self._advanced:
                await asyncio.wait_for(self._advanced.wait_for(done), CATCH_UP_WAIT)
        except TimeoutError:
            log.warning(
                "watch of %s is behind (%s at %d); reading it", self.bucket.name, key, revision
            )
            await self._read(key)
        finally:
            self._waiters -= 1

    async def _read(self, key: str) -> None:
        value = await self.bucket.get_or_none(key)
        if value is None:
            self._apply(key, None, self.revisions.get(key, 0))
        else:
            self._apply(key, value, getattr(value, "revision", 0) or self.revisions.get(key, 0))
