"""How far `wolfpack gc` and `wolfpack fsck` are, on stderr: a rich progress bar on a terminal,
else a log line when a phase starts, every few seconds, and when it ends (so a cron job's log
still tells where the time went)."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Final

from libs.common.terminal.progressbar import StderrBar
from libs.common.terminal.sizes import human_bytes

if TYPE_CHECKING:
    from rich.progress import TaskID

# Phases that count bytes; the others count files.
BYTE_PHASES: Final = frozenset({"hashing"})
LOG_EVERY: Final = 5.0


class StoreProgress(StderrBar):
    """A storefiles.Progress callback (phase, done, total or None) that shows itself."""

    def __init__(self, log: logging.Logger, *, quiet: bool = False) -> None:
        super().__init__(10, "amount", enabled=not quiet)
        self._log = log
        self._tasks: dict[str, TaskID] = {}
        self._logged: dict[str, float] = {}

    def __call__(self, phase: str, done: int, total: int | None) -> None:
        if not self.enabled:
            return
        amount = _amount(phase, done, total)
        if self.progress is not None:
            task = self._tasks.get(phase)
            if task is None:
                task = self._tasks[phase] = self.progress.add_task(phase, total=total, amount="")
            self.progress.update(task, completed=done, total=total, amount=amount)
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
