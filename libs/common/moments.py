"""A point in time as people give it on a command line (`--since`): ISO 8601, `now`, or a
duration ago (`10m`, `2h`, `1d`, `1h30m`, `90s ago`). Pure: the caller passes what "now" is.
"""

from __future__ import annotations

import datetime

from libs.common.errors import Invalid
from libs.common.units import parse_duration

EXAMPLES = "2024-05-01T12:00:00Z, 2024-05-01, now, 10m, 2h, 1d"


def parse_time(text: str, now: datetime.datetime) -> datetime.datetime:
    """`text` as an aware UTC datetime. An ISO 8601 time without an offset is local time (as
    `date` and journalctl read it); a duration means that long before `now`."""
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    words = text.strip()
    if words.lower() == "now":
        return now.astimezone(datetime.UTC)
    ago = words[: -len("ago")].rstrip() if words.lower().endswith(" ago") else words
    try:
        seconds = parse_duration(ago)
    except Invalid:
        pass
    else:
        try:
            return (now - datetime.timedelta(seconds=seconds)).astimezone(datetime.UTC)
        except OverflowError:
            raise Invalid(f"{text!r} reaches back before year 1") from None
    try:
        when = datetime.datetime.fromisoformat(words)
    except ValueError:
        raise Invalid(
            f"{text!r} is not a time (want ISO 8601 or a duration ago: {EXAMPLES})"
        ) from None
    try:
        # Without an offset: local time, as the reader's clock shows it.
        return (when if when.tzinfo else when.astimezone()).astimezone(datetime.UTC)
    except (OverflowError, OSError, ValueError):
        raise Invalid(f"{text!r} is out of range") from None
