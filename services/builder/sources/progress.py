"""Progress of an import, reported at a bounded rate, and the stop flag of its worker threads."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Literal, TypeVar

import msgspec

Phase = Literal["fetch", "verify", "extract", "swap"]
T = TypeVar("T")


class ImportProgress(msgspec.Struct, kw_only=True, frozen=True):
    """One progress report: `bytes_total` is None where the total is not known up front."""

    phase: Phase
    bytes_done: int = 0
    bytes_total: int | None = None
    files_done: int = 0


ProgressCallback = Callable[[ImportProgress], None]


class Stopped(Exception):
    """Raised inside a worker thread when its import was cancelled."""


class ProgressReporter:
    """Calls `callback` at most every `interval` seconds (always when `force`d, at the start
    and end of a phase), on the event loop's thread even when reported from a worker thread.
    Also carries the stop flag that worker threads check between files."""

    def __init__(self, callback: ProgressCallback | None, *, interval: float = 0.25) -> None:
        self._callback = callback
        self._interval = interval
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._last = 0.0
        self._lock = threading.Lock()
        self.stop = threading.Event()

    def report(
        self,
        phase: Phase,
        bytes_done: int = 0,
        bytes_total: int | None = None,
        files_done: int = 0,
        *,
        force: bool = False,
    ) -> None:
        if self.stop.is_set():
            raise Stopped
        if self._callback is None:
            return
        now = time.monotonic()
        with self._lock:
            if not force and now - self._last < self._interval:
                return
            self._last = now
        progress = ImportProgress(
            phase=phase, bytes_done=bytes_done, bytes_total=bytes_total, files_done=files_done
        )
        if threading.get_ident() == self._loop_thread:
            self._callback(progress)
        else:
            self._loop.call_soon_threadsafe(self._callback, progress)

    async def run_in_thread(self, function: Callable[[], T]) -> T:
        """Run blocking `function` in a thread; if cancelled, stop it and wait for it to end,
        so the caller's clean-up never races with a thread still writing."""
        future = asyncio.ensure_future(asyncio.to_thread(function))
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            self.stop.set()
            await asyncio.wait([future])
            if not future.cancelled():
                future.exception()  # retrieved: the cancellation is what the caller sees
            raise
