"""What the node agent (overlay wwclient) and bootd tell each other: its reports to
`/status/{mac}`, and bootd's answer when it pushed the runtime overlay (`?callback=`)."""

from __future__ import annotations

import msgspec


class AgentReport(msgspec.Struct, kw_only=True):
    # What the agent did (`runtime`) and how it went (`applied`, `failed`, ...).
    stage: str
    message: str = ""
    runtime_digest: str = ""


class RuntimePushed(msgspec.Struct, kw_only=True):
    """`GET /runtime/{mac}?callback=PORT`: what was sent to the node's port, so the agent can
    check that it got all of it."""

    digest: str
    size: int
