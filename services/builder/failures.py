"""A failed job's reason: one line a person can act on, from whatever the job raised."""

from __future__ import annotations

import errno
import logging

from libs.common.errors import WolfpackError

log = logging.getLogger("wolfpack.builder")

_DOING = {
    None: "starting",
    "inspect": "asking the registry for the digest",
    "fetch": "fetching",
    "verify": "verifying",
    "extract": "unpacking",
    "swap": "putting the rootfs in place",
    "kernel": "storing the kernel",
    "scan": "reading the rootfs",
    "compress": "compressing the image",
    "assemble": "assembling the image",
}
FULL_HINT = "free space in the data folder (or give it a bigger disk) and try again"


def failure_reason(exc: BaseException, phase: str | None, source: str) -> str:
    doing = _DOING.get(phase, phase or "starting")
    if isinstance(exc, WolfpackError):
        text = exc.message
        if source and source not in text:
            text = f"{source}: {text}"
    elif isinstance(exc, OSError):
        what = exc.strerror or str(exc) or type(exc).__name__
        where = f" ({exc.filename})" if exc.filename else ""
        text = f"{doing}: {what}{where}"
    else:
        log.error("unexpected failure while %s", doing, exc_info=exc)
        text = f"internal error while {doing}: {type(exc).__name__}: {exc} (see the builder log)"
    if _is_full(exc) and FULL_HINT not in text:
        text = f"{text}; {FULL_HINT}"
    return " ".join(text.split())


def _is_full(exc: BaseException) -> bool:
    """Out of space, directly or as the cause of a wrapped error."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        seen = seen.__cause__
    return False
