"""MAC addresses as nodes send them (`AA-BB-...`, `aa:bb:...`) made one form: lowercase, colons."""

from __future__ import annotations

import re
from typing import Final

from libs.common.errors import Invalid

_MAC: Final = re.compile(r"[0-9a-f]{2}([:-][0-9a-f]{2}){5}")


def normalize_mac(text: str) -> str:
    """`AA-BB-CC-DD-EE-FF` or `aa:bb:cc:dd:ee:ff` → `aa:bb:cc:dd:ee:ff`; anything else Invalid."""
    lowered = text.strip().lower()
    if not _MAC.fullmatch(lowered):
        raise Invalid(f"not a MAC address: {text[:40]!r} (want six hex pairs)", field="mac")
    return lowered.replace("-", ":")


def maybe_mac(text: str | None) -> str | None:
    """The normalized MAC, None for anything that is not one (stored data may hold junk)."""
    if not text:
        return None
    try:
        return normalize_mac(text)
    except Invalid:
        return None
