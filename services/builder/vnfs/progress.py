"""How far a build is, told to the caller at a bounded rate (the service turns it into events)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

import msgspec

Phase = Literal["scan", "compress", "assemble"]


class BuildProgress(msgspec.Struct, kw_only=True):
    phase: Phase
    files_done: int = 0
    files_total: int = 0
    # Uncompressed archive bytes (compress) or image bytes written (assemble).
    bytes_done: int = 0
    bytes_total: int = 0
    chunks_reused: int = 0
    chunks_built: int = 0


ProgressCallback = Callable[[BuildProgress], object]


class Throttle:
    """Passes a report on when the phase changes, when forced, or `interval` s after the last."""

    def __init__(self, callback: ProgressCallback | None, interval: float = 0.25) -> None:
        self._callback = callback
        self._interval = interval
        self._last = 0.0
        self._phase: str | None = None

    def __call__(self, progress: BuildProgress, *, force: bool = False) -> None:
        if self._callback is None:
            return
        now = time.monotonic()
        if force or progress.phase != self._phase or now - self._last >= self._interval:
            self._last = now
            self._phase = progress.phase
            # A copy: the builder goes on updating its own.
            self._callback(msgspec.structs.replace(progress))
