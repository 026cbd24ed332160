"""A job's progress on stderr: a rich progress bar on a terminal (phase, bytes, files),
else one line per phase, so logs of scripted imports still tell where time went."""

from __future__ import annotations

from typing import TYPE_CHECKING, Self

from libs.common.models.image import ImageProgress
from libs.common.terminal.progressbar import StderrBar
from libs.common.terminal.sizes import human_bytes

if TYPE_CHECKING:
    from rich.progress import TaskID

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


class ProgressDisplay(StderrBar):
    def __init__(self, name: str, *, enabled: bool = True) -> None:
        super().__init__(12, "files", download=True, enabled=enabled)
        self._name = name
        self._task: TaskID | None = None
        self._phase: str | None = None

    def __enter__(self) -> Self:
        super().__enter__()
        if self.progress is not None:
            self._task = self.progress.add_task(self._name, total=None, files="")
        return self

    def update(self, progress: ImageProgress) -> None:
        if not self.enabled:
            return
        label = PHASES.get(progress.phase, progress.phase)
        files = f"{progress.files_done} files" if progress.files_done else ""
        if progress.files_total:
            files = f"{progress.files_done}/{progress.files_total} files"
        if self.progress is not None and self._task is not None:
            self.progress.update(
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
            assert self.console is not None  # entered and enabled
            self.console.print(f"{self._name}: {label}{note}", highlight=False)
        self._phase = progress.phase
