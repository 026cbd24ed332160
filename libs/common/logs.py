"""Logging set-up shared by every wolfpack process: one line per record, `LEVEL service: message`.

Loggers are named `wolfpack.<service>...`; uvicorn's and nats-py's records go through the same
handler so a service's output reads the same whatever library wrote it. A record logged with
`extra={"verbatim": True}` is printed as its bare message: the supervisor uses that to pass on
a child's lines, which already carry their own level and service name.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Final

LEVELS: Final = ("debug", "info", "warning", "error", "critical")
VERBATIM: Final = "verbatim"
# A node's asset key travels in its URLs (`?assetkey=`), which uvicorn's access lines and
# httpx's request lines print: the value never reaches a log.
_ASSET_KEY: Final = re.compile(r"(assetkey=)[^&\s\"']*", re.IGNORECASE)
HIDDEN: Final = "********"


def scrub(message: str) -> str:
    """`message` with every `assetkey=` value in it hidden."""
    return _ASSET_KEY.sub(rf"\g<1>{HIDDEN}", message) if "assetkey=" in message.lower() else message


class _LineFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if not getattr(record, VERBATIM, False):
            message = f"{record.levelname} {self._service}: {message}"
        if record.exc_info:
            message = f"{message}\n{self.formatException(record.exc_info)}"
        # Last: an exception's message (an httpx error quoting the URL) can hold a key too.
        return scrub(message)


class _WolfpackHandler(logging.StreamHandler):
    """Marks the handler this module installed, so a second set-up replaces it."""


def setup_logging(service: str, level: str = "info") -> logging.Logger:
    """Route every logger to stderr as `LEVEL service: message`; return `wolfpack.<service>`."""
    if level.lower() not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, not {level!r}")
    numeric = logging.getLevelName(level.upper())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _WolfpackHandler)]:
        root.removeHandler(old)
    handler = _WolfpackHandler(sys.stderr)
    handler.setFormatter(_LineFormatter(service))
    root.addHandler(handler)
    root.setLevel(numeric)
    # uvicorn configures its own handlers unless told not to; make it propagate to ours.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uv = logging.getLogger(name)
        uv.handlers.clear()
        uv.propagate = True
    # One line per request (served or sent: health probes) drowns everything else; keep
    # them for debugging only.
    chatty = logging.DEBUG if numeric <= logging.DEBUG else logging.WARNING
    for name in ("uvicorn.access", "httpx"):
        logging.getLogger(name).setLevel(chatty)
    return logging.getLogger(f"wolfpack.{service}")
