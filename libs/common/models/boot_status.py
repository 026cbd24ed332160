"""bootd's answer to `GET /api/v1/status`: each node's last boot stage and its recent timeline."""

from __future__ import annotations

import msgspec

from libs.common.models.boot_stage import BootStage


class NodeBootStatus(msgspec.Struct, kw_only=True):
    node: str
    # The last stage seen (a BootStage's stage), when, and from where.
    stage: str
    at: float
    remote: str = ""
    ok: bool = True
    error: str = ""
    # The most recent stages, oldest first (bounded).
    timeline: list[BootStage] = msgspec.field(default_factory=list)
