"""A progress bar on stderr that shows only on a terminal, for the displays of `wolfctl image`
jobs and of `wolfpack gc`/`fsck`. rich is imported when one is entered, not before: wolfctl's
imports stay light, and a disabled display never loads it."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress


class StderrBar:
    """While entered (and enabled): `console`, a rich console on stderr, and when that is a
    terminal `progress`, a started transient bar with the task's description (padded to
    `label_width`), the bar, bytes done and total if `download`, the task's text `fields`
    and the time elapsed. Without a terminal `progress` stays None: say things in lines."""

    def __init__(
        self, label_width: int, *fields: str, download: bool = False, enabled: bool = True
    ) -> None:
        self._label_width = label_width
        self._fields = fields
        self._download = download
        self.enabled = enabled
        self.console: Console | None = None
        self.progress: Progress | None = None

    def __enter__(self) -> Self:
        if not self.enabled:
            return self
        from rich.console import Console

        self.console = Console(stderr=True)
        if self.console.is_terminal:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                ProgressColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            columns: list[ProgressColumn] = [
                TextColumn(f"[bold]{{task.description:<{self._label_width}}}"),
                BarColumn(),
            ]
            if self._download:
                columns.append(DownloadColumn(binary_units=True))
            columns += [TextColumn(f"{{task.fields[{name}]}}") for name in self._fields]
            columns.append(TimeElapsedColumn())
            self.progress = Progress(*columns, console=self.console, transient=True)
            self.progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.progress is not None:
            self.progress.stop()
