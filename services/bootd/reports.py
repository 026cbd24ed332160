"""What the node agent (overlay wwclient) posts to `/status/{mac}`."""

from __future__ import annotations

import msgspec


class AgentReport(msgspec.Struct, kw_only=True):
    # What the agent did (`runtime`) and how it went (`applied`, `failed`, ...).
    stage: str
    message: str = ""
    runtime_digest: str = ""
