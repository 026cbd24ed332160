"""How far `wolfpack gc` and `wolfpack fsck` are, on stderr: a rich progress bar on a terminal,
else a log line when a phase starts, every few seconds, and when it ends (so a cron job's log
still tells where the time went)."""

from __future__ import annotations

import logging
import time
from types import TracebackType
from typing import Any, Final

from libs.wolfctl.image.progress import human_bytes

# Phases that count bytes; the others count files.
BYTE_PHASES: Final = frozenset({"hashing"})
LOG_EVERY: Final = 5.0


class StoreProgress:
    """A storefiles.Progress callback (phase, done, total or None) that shows itself."""

    def __init__(self, log: logging.Logger, *, quiet: bool = False) -> None:
        self._log = log
        self._quiet = quiet
        self._bar: Any = None
        self._tasks: dict[str, Any] = {}
        self._logged: dict[str, float] = {}

    def __enter__(self) -> StoreProgress:
        if self._quiet:
            return self
        from rich.console import Console

        console = Console(stderr=True)
        if console.is_terminal:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("[bold]{task.description:<10}"),
                BarColumn(),
                TextColumn("{task.fields[amount]}"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            )
            self._bar.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()

    def __call__(self, phase: str, done: int, total: int | None) -> None:
        if self._quiet:
            return
        amount = _amount(phase, done, total)
        if self._bar is not None:
            task = self._tasks.get(phase)
            if task is None:
                task = self._tasks[phase] = self._bar.add_task(phase, total=total, amount="")
            self._bar.update(task, completed=done, total=total, amount=amount)
            return
        now = time.monotonic()
        last = self._logged.get(phase)
        finished = total is not None and done >= total
        if last is None or finished or now - last >= LOG_EVERY:
            self._logged[phase] = now
            self._log.info("%s: %s", phase, amount)


def _amount(phase: str, done: int, total: int | None) -> str:
    if phase in BYTE_PHASES:
        text = human_bytes(done) + (f" of {human_bytes(total)}" if total is not None else "")
    else:
        text = f"{done} files" + (f" of {total}" if total is not None else "")
    if total:
        text += f" ({100 * done // total} %)"
    return text
