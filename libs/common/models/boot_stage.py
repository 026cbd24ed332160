"""Boot stage events: `wolfpack.node.<name>.boot`, one per fetch a booting node makes.

tftpd publishes stage `tftp`; bootd the stages after it. A node that cannot be named from its
address or MAC is published as `unknown` (subject `wolfpack.node.unknown.boot`).
"""

from __future__ import annotations

from typing import Final, Literal

import msgspec

from libs.common.models.events import now

UNKNOWN_NODE: Final = "unknown"

# In boot order: firmware TFTP fetch, iPXE script, kernel, image, system overlay, runtime
# overlay, the agent's report from the running node.
Stage = Literal["tftp", "ipxe", "kernel", "image", "system", "runtime", "agent"]
STAGES: Final[tuple[Stage, ...]] = (
    "tftp",
    "ipxe",
    "kernel",
    "image",
    "system",
    "runtime",
    "agent",
)


class BootStage(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One fetch (or report) of a booting node, completed or failed."""

    node: str
    stage: Stage
    # What was asked for: a TFTP file name, or an HTTP path.
    file: str
    # Bytes sent to the node (for a failure: how far it got).
    bytes: int = 0
    # The node's address as seen by the server, "ip:port".
    remote: str = ""
    # The MAC the node asked with, where the protocol carries one (bootd's URLs do).
    hwaddr: str = ""
    at: float = msgspec.field(default_factory=now)
    # Seconds from the request to the last byte (or the failure).
    duration: float = 0.0
    ok: bool = True
    # Why it failed, in words a person can act on; empty when ok.
    error: str = ""
