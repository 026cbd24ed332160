"""Event payloads published on `wolfpack.>` (JSON, msgspec). State is written first, then these."""

from __future__ import annotations

import time
from typing import Literal

import msgspec


def now() -> float:
    return time.time()


class ChangeEvent(msgspec.Struct, kw_only=True, omit_defaults=True):
    """`wolfpack.node|profile.<name>.updated|deleted`: an object changed in its KV bucket.

    Carries no field values (so no secret ever travels in an event); a consumer reads the
    object from KV at `revision` or later. `fields` names the top-level fields that changed.
    """

    kind: Literal["node", "profile"]
    name: str
    action: Literal["updated", "deleted"]
    revision: int
    at: float = msgspec.field(default_factory=now)
    fields: list[str] = msgspec.field(default_factory=list)
