"""A job's progress on stderr: a rich progress bar on a terminal (phase, bytes, files),
else one line per phase, so logs of scripted imports still tell where time went."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from libs.common.models.image import ImageProgress

PHASES = {
    "inspect": "checking",
    "fetch": "fetching",
    "verify": "verifying",
    "extract": "unpacking",
    "swap": "swapping",
    "kernel": "kernel",
    "scan": "scanning",
    "compress": "compressing",
    "assemble": "assembling",
}


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(count) < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"


class ProgressDisplay:
    def __init__(self, name: str, *, enabled: bool = True) -> None:
        self._name = name
        self._enabled = enabled
        self._progress: Any = None
        self._task: Any = None
        self._console: Any = None
        self._phase: str | None = None

    def __enter__(self) -> ProgressDisplay:
        if not self._enabled:
            return self
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._console = Console(stderr=True)
        if self._console.is_terminal:
            self._progress = Progress(
                TextColumn("[bold]{task.description:<12}"),
                BarColumn(),
                DownloadColumn(binary_units=True),
                TextColumn("{task.fields[files]}"),
                TimeElapsedColumn(),
                console=self._console,
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task(self._name, total=None, files="")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, progress: ImageProgress) -> None:
        if not self._enabled:
            return
        label = PHASES.get(progress.phase, progress.phase)
        files = f"{progress.files_done} files" if progress.files_done else ""
        if progress.files_total:
            files = f"{progress.files_done}/{progress.files_total} files"
        if self._progress is not None:
            self._progress.update(
                self._task,
                description=label,
                completed=progress.bytes_done,
                total=progress.bytes_total,
                files=files,
            )
        elif progress.phase != self._phase:
            notes = [human_bytes(progress.bytes_total)] if progress.bytes_total else []
            notes += [progress.message] if progress.message else []
            note = f" ({', '.join(notes)})" if notes else ""
            self._console.print(f"{self._name}: {label}{note}", highlight=False)
        self._phase = progress.phase
