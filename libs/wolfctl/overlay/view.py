"""Overlays as text: listing rows, entry rows, a build's report."""

from __future__ import annotations

import stat
from collections.abc import Iterable

from libs.common.models.overlay import OverlayFile
from libs.common.models.overlay_api import OverlaySummary, RenderedFile, WaveReport

LIST_HEADERS = ("OVERLAY NAME", "ORIGIN", "ENTRIES")
FILES_HEADERS = ("OVERLAY NAME", "PATH", "MODE", "OWNER", "SIZE")
ENTRY_HEADERS = ("PATH", "MODE", "OWNER", "SIZE")
_TYPE = {"dir": stat.S_IFDIR, "file": stat.S_IFREG, "symlink": stat.S_IFLNK}


def origin(summary: OverlaySummary) -> str:
    if summary.origin == "site" and summary.shadows:
        return "site (shadows shipped)"
    return summary.origin


def list_rows(overlays: Iterable[OverlaySummary]) -> Iterable[tuple[str, ...]]:
    for overlay in overlays:
        yield overlay.name, origin(overlay), str(overlay.entries)


def mode_text(kind: str, mode: int) -> str:
    """`-rw-r--r--`, `drwxr-xr-x`, `lrwxrwxrwx`."""
    return stat.filemode(_TYPE.get(kind, stat.S_IFREG) | mode)


def _path(path: str, kind: str, target: str | None) -> str:
    if kind == "dir":
        return path + "/"
    if kind == "symlink":
        return f"{path} -> {target or ''}"
    return path


def entry_rows(files: dict[str, OverlayFile]) -> Iterable[tuple[str, ...]]:
    for path, entry in sorted(files.items()):
        size = str(entry.size) if entry.kind == "file" else ""
        yield (
            _path(path, entry.kind, entry.target),
            mode_text(entry.kind, entry.mode),
            f"{entry.uid}:{entry.gid}",
            size,
        )


def rendered_rows(files: Iterable[RenderedFile]) -> Iterable[tuple[str, ...]]:
    for found in files:
        size = str(found.size) if found.kind == "file" else ""
        yield (
            _path(found.path, found.kind, found.target),
            mode_text(found.kind, found.mode),
            f"{found.uid}:{found.gid}",
            size,
        )


def files_rows(overlays: Iterable[OverlaySummary]) -> Iterable[tuple[str, ...]]:
    for overlay in overlays:
        for row in entry_rows(overlay.files or {}):
            yield (overlay.name, *row)


def report_text(report: WaveReport) -> str:
    lines = [
        f"rendered {report.nodes_rendered} nodes in {report.seconds:.2f} s: "
        f"{report.manifests_written} manifests changed, {report.failed} failed"
    ]
    for failure in report.failures:
        where = failure.overlay
        if failure.template:
            where += f"/{failure.template}" + (f":{failure.line}" if failure.line else "")
        lines.append(f"  {failure.node}: {where}: {failure.message}")
    if report.failed > len(report.failures):
        lines.append(f"  ... and {report.failed - len(report.failures)} more")
    return "\n".join(lines) + "\n"
