"""Request and response bodies of the overlayd API (base `http://HOST:9872/api/v1`) that are
not stored objects themselves; what is stored (OverlayMeta, BootManifest) is in overlay.py."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from libs.common.models.fields import meta
from libs.common.models.overlay import OverlayFile, RenderFailedEvent

Origin = Literal["shipped", "site"]
WaveReason = Literal["reconcile", "events", "build", "followup"]


class OverlaySummary(msgspec.Struct, kw_only=True, omit_defaults=True):
    """`GET /overlays`: one overlay; `files` holds its entries with `?files=true`."""

    name: str
    origin: Annotated[Origin, meta("shipped in the package, or a site overlay")]
    shadows: Annotated[bool, meta("a site overlay hiding the shipped one of its name")] = False
    revision: Annotated[int | None, meta("KV revision of a site overlay")] = None
    entries: Annotated[int, meta("how many files, directories and symlinks")] = 0
    files: dict[str, OverlayFile] | None = None


class OverlayCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`POST /overlays`: a new site overlay; a copy of the shipped one of the same name, if any,
    unless `empty`."""

    name: str
    empty: bool = False


class MkdirRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`POST /overlays/{name}/mkdir`."""

    path: str
    mode: str = "0755"
    uid: int = 0
    gid: int = 0


class ChmodRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`POST /overlays/{name}/chmod`: `mode` an octal string like "0644"."""

    path: str
    mode: str


class RenderedFile(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One file of an overlay rendered for a node (`GET /overlays/{name}?render=NODE`)."""

    path: str
    kind: Literal["file", "dir", "symlink"]
    mode: Annotated[int, meta("permission bits")]
    uid: int = 0
    gid: int = 0
    size: int = 0
    target: str | None = None
    data: Annotated[bytes | None, meta("a file's content (base64 in JSON)")] = None


class WaveReport(msgspec.Struct, kw_only=True):
    """One wave of rendering: why, when, how much, and which nodes failed."""

    reason: WaveReason
    started_at: Annotated[float, meta("Unix time")]
    seconds: float = 0.0
    changes: Annotated[int, meta("events (or requests) the wave answered")] = 0
    nodes_rendered: int = 0
    manifests_written: int = 0
    manifests_deleted: int = 0
    failed: Annotated[int, meta("nodes whose render failed")] = 0
    failures: Annotated[list[RenderFailedEvent], meta("the first failures")] = msgspec.field(
        default_factory=list
    )


class OverlaydStatus(msgspec.Struct, kw_only=True):
    """`GET /status`."""

    reconciled: Annotated[bool, meta("the start-up full render is done")]
    busy: Annotated[bool, meta("a wave runs")]
    waves: Annotated[int, meta("waves since start")]
    pending: Annotated[int, meta("changes waiting for the next wave")]
    followup: Annotated[int, meta("nodes waiting for their all-node files (hosts)")]
    failing: Annotated[int, meta("nodes whose last render failed (they keep their manifest)")]
    manifests: Annotated[int, meta("boot manifests in KV `boot`")]
    host_files_pending: Annotated[bool, meta("host files wait for changes to pause")] = False
    last: WaveReport | None = None
