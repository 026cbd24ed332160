"""A stored object's revision in HTTP: the ETag an answer carries, and the If-Match a write
sends back (compare-and-set on the KV revision, as registry and overlayd writes are)."""

from __future__ import annotations

from libs.common.errors import Invalid


def etag(revision: int) -> str:
    """The ETag of an object at `revision`: `"12"`."""
    return f'"{revision}"'


def if_match_revision(if_match: str | None) -> int | None:
    """The revision an If-Match header names (`"12"`, `W/"12"` or `12`); None without one."""
    if if_match is None:
        return None
    value = if_match.strip().removeprefix("W/").strip('"')
    if not (value.isascii() and value.isdigit()):  # int() refuses "²", isdigit() not
        raise Invalid(f"If-Match must be a revision number, got {if_match!r}", field="If-Match")
    return int(value)
