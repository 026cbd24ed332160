"""One KV bucket kept in memory by a watch, for a service that answers from it without asking
NATS each time.

Bucket.watch (kv.py, watch.py) already starts over after a NATS reconnect and passes on only
what is newer. A mirror adds what every user of that watch needs: a start that returns once
the current entries are in (and raises if the watch cannot begin), a watch started again
should it fail later, a callback for every change, and a wait until it holds a write that an
event names. A watch gives the newest value of each key, not every value in between: a key
written twice while the watch was away arrives once, at its newest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Callable
from typing import Any, Final, Generic, Protocol, TypeVar, overload

import msgspec

log = logging.getLogger("wolfpack.kv")

T = TypeVar("T", bound=msgspec.Struct)
T_co = TypeVar("T_co", bound=msgspec.Struct, covariant=True)
# What a mirror keeps of each value: the value itself, or only what its user needs.
V = TypeVar("V")

# (key, old kept value, new kept value), None where the key is absent (or nothing is kept).
Changed = Callable[[str, V | None, V | None], None]

# How long caught_up waits for the watch before reading the key itself.
CATCH_UP_WAIT: Final = 2.0
# How long a watch that failed after its start waits before it starts again.
RESTART_WAIT: Final = 1.0
# How often stop() cancels the watch again while it has not ended.
RECANCEL_EVERY: Final = 0.1


class WatchedBucket(Protocol[T_co]):
    """The part of libs.common.bus.kv.Bucket a mirror needs."""

    @property
    def name(self) -> str: ...
    async def get_or_none(self, key: str) -> T_co | None: ...
    def watch(
        self, ready: asyncio.Event | None = None
    ) -> AsyncGenerator[tuple[str, T_co | None, int], None]: ...


class Mirror(Generic[T, V]):
    """`items` holds what is kept of the bucket's current values by key (the values, unless
    `keep` says less: tftpd keeps a node's addresses, not the node); `on_change` hears of every
    change of what is kept. `keep` returning None keeps nothing of that value: the key is
    then absent from `items`, as if deleted.

    Revisions are the bucket's stream sequences: what the mirror learns of a key at a revision
    older than one it holds (a replay, or the watch's copy of our own write) is ignored.
    """

    @overload
    def __init__(
        self: Mirror[T, T],
        bucket: WatchedBucket[T],
        on_change: Changed[T] | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self,
        bucket: WatchedBucket[T],
        on_change: Changed[V] | None = None,
        *,
        keep: Callable[[str, T], V | None],
    ) -> None: ...

    def __init__(
        self,
        bucket: WatchedBucket[T],
        on_change: Changed[Any] | None = None,
        *,
        keep: Callable[[str, T], Any] | None = None,
    ) -> None:
        self.bucket = bucket
        self.on_change = on_change
        self._keep = keep
        # Changed in place, never replaced: callers may keep a reference to it.
        self.items: dict[str, V] = {}
        # The newest revision known of each key, deleted keys included.
        self.revisions: dict[str, int] = {}
        # The newest bucket revision the watch has delivered.
        self.seen = 0
        # caught_up waiters: a future each, resolved once its condition holds.
        self._waiting: dict[asyncio.Future[None], Callable[[], bool]] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Load the current entries (returns once they are all in), then follow changes.
        Raises what stopped the watch if it fails before that."""
        ready = asyncio.Event()
        task = asyncio.create_task(self._follow(ready), name=f"mirror of KV {self.bucket.name}")
        self._task = task
        loaded = asyncio.ensure_future(ready.wait())
        try:
            await asyncio.wait({task, loaded}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            await self.stop()
            raise
        finally:
            loaded.cancel()
        if not ready.is_set():
            self._task = None
            task.result()  # the error that ended the watch
            raise RuntimeError(f"the watch of KV {self.bucket.name} ended before it caught up")

    async def stop(self) -> None:
        task, self._task = self._task, None
        # nats.py can lose a cancel (3.11's wait_for, its flush): cancel until the task ends.
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=RECANCEL_EVERY)

    async def _follow(self, ready: asyncio.Event) -> None:
        while True:
            try:
                async with contextlib.aclosing(self.bucket.watch(ready)) as changes:
                    async for key, value, revision in changes:
                        self.seen = max(self.seen, revision)
                        self.apply(key, value, revision)
                raise ConnectionError("the watch ended")
            except Exception:
                if not ready.is_set():
                    raise
                # Not a NATS restart (the bucket's watch rides those out): something broke.
                log.exception(
                    "watch of KV %s failed; starting it again in %gs",
                    self.bucket.name,
                    RESTART_WAIT,
                )
                await asyncio.sleep(RESTART_WAIT)

    def apply(self, key: str, value: T | None, revision: int) -> None:
        """Take in a change of `key` (None: deleted) stored at `revision`, from the watch or
        learnt first-hand (a write of our own): ignored when the mirror knows the key at a
        newer revision. A deletion whose own revision is unknown passes that of the value it
        removed: what the watch later brings of older revisions is then ignored too."""
        known = self.revisions.get(key, 0)
        if revision > known or (value is None and revision == known):
            self.revisions[key] = revision
            old = self.items.get(key)
            kept = self._kept(key, value)
            if kept is None:
                self.items.pop(key, None)
            else:
                self.items[key] = kept
            if old is not None or kept is not None:
                self._tell(key, old, kept)
        self._wake()

    def _kept(self, key: str, value: T | None) -> V | None:
        if value is None or self._keep is None:
            return value  # type: ignore[return-value]  # V is T without `keep`
        return self._keep(key, value)

    def _tell(self, key: str, old: V | None, new: V | None) -> None:
        if self.on_change is None:
            return
        try:
            self.on_change(key, old, new)
        except Exception:
            # The mirror holds the change; a listener's own failure must not stop the watch.
            log.exception("KV %s: on_change of %s failed", self.bucket.name, key)

    def _wake(self) -> None:
        for arrived, done in self._waiting.items():
            if not arrived.done() and done():
                arrived.set_result(None)

    async def caught_up(self, key: str, revision: int, *, deleted: bool = False) -> None:
        """Make sure the mirror reflects `key` at `revision` or later (an event names a write;
        the watch delivers the bucket in order, so once past that revision it holds that write
        or a newer one); `deleted`: that the key written at `revision` is gone (or was written
        again since). Waits CATCH_UP_WAIT for the watch, then reads the key (the model needs a
        `revision` field, which Bucket fills)."""

        def done() -> bool:
            if deleted:  # (with `keep`, a key whose value keeps nothing counts as gone)
                return key not in self.items or self.revisions.get(key, 0) > revision
            return self.revisions.get(key, 0) >= revision or self.seen >= revision

        if done():
            return
        arrived = asyncio.get_running_loop().create_future()
        self._waiting[arrived] = done
        try:
            async with asyncio.timeout(CATCH_UP_WAIT):
                await arrived
        except TimeoutError:
            log.warning(
                "watch of KV %s is behind (%s at %d); reading it", self.bucket.name, key, revision
            )
            await self._read(key)
        finally:
            del self._waiting[arrived]

    async def _read(self, key: str) -> None:
        known = self.revisions.get(key, 0)  # before the read: the watch may move on meanwhile
        value = await self.bucket.get_or_none(key)
        self.apply(key, value, known if value is None else getattr(value, "revision", known))


async def start_all(*mirrors: Mirror[Any, Any]) -> None:
    """Start the mirrors side by side; should one fail, stop them all and raise its error."""
    try:
        await asyncio.gather(*(mirror.start() for mirror in mirrors))
    except BaseException:
        await asyncio.gather(*(mirror.stop() for mirror in mirrors))
        raise
