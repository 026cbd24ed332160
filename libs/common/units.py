"""Durations and sizes as people write them (`7d`, `1h30m`, `1GiB`, `500MB`) and as wolfpack
shows them (`7 days`, `1 GiB`): pure functions, each bad text an Invalid naming what is wrong.

Sizes follow the SI and IEC prefixes, as Kubernetes and `numfmt` read them: K, M, G, T (with or
without B) are powers of 1000; Ki, Mi, Gi, Ti (with or without B) powers of 1024. A bare
number is bytes, or seconds.
"""

from __future__ import annotations

import math
import re
from typing import Final

from libs.common.errors import Invalid

SECOND: Final = 1.0
MINUTE: Final = 60.0
HOUR: Final = 3600.0
DAY: Final = 86400.0
WEEK: Final = 7 * DAY

DURATION_UNITS: Final = {"": SECOND, "s": SECOND, "m": MINUTE, "h": HOUR, "d": DAY, "w": WEEK}
SIZE_UNITS: Final = {
    "": 1,
    "k": 1000,
    "m": 1000**2,
    "g": 1000**3,
    "t": 1000**4,
    "ki": 1024,
    "mi": 1024**2,
    "gi": 1024**3,
    "ti": 1024**4,
}

_NUMBER: Final = r"\d+(?:\.\d*)?|\.\d+"
# One or more `<number><unit>` parts, as in `1h30m` or `1d 12h`.
_DURATION_PART: Final = re.compile(rf"\s*({_NUMBER})\s*([a-z]*)\s*", re.IGNORECASE)
_SIZE: Final = re.compile(rf"\s*({_NUMBER})\s*([a-z]*?)\s*(b?)\s*", re.IGNORECASE)

_SHOWN_DURATIONS: Final = (("day", DAY), ("hour", HOUR), ("minute", MINUTE))
_SHOWN_SIZES: Final = (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024))


def parse_duration(text: str) -> float:
    """Seconds in `text`: `90`, `90s`, `10m`, `2h`, `7d`, `2w`, `1.5h`, `1h30m`; never negative."""
    total = 0.0
    at = 0
    parts = 0
    while at < len(text):
        found = _DURATION_PART.match(text, at)
        if found is None or found.end() == at:
            break
        number, unit = found.groups()
        if not unit and (parts or found.end() != len(text)):
            raise Invalid(f"{text!r}: {number.strip()} wants a unit (s, m, h, d or w)")
        scale = DURATION_UNITS.get(unit.lower())
        if scale is None:
            raise Invalid(
                f"{text!r}: unknown unit {unit!r} (want s, m, h, d or w, as in 90s, 10m, 2h, 7d)"
            )
        total += float(number) * scale
        at = found.end()
        parts += 1
    if parts == 0 or at != len(text):
        raise Invalid(f"{text!r} is not a duration (want a number with s, m, h, d or w: 7d, 1h30m)")
    if not math.isfinite(total):
        raise Invalid(f"{text!r} is too long a duration")
    return total


def parse_size(text: str) -> int:
    """Bytes in `text`: `4096`, `64KiB`, `512Mi`, `1GiB`, `1G` (10**9), `1.5GB`; whole bytes."""
    found = _SIZE.fullmatch(text)
    scale = SIZE_UNITS.get(found.group(2).lower()) if found is not None else None
    if found is None or scale is None:
        raise Invalid(
            f"{text!r} is not a size (want bytes, or a number with K, M, G, T (powers of 1000) "
            "or Ki, Mi, Gi, Ti (powers of 1024), B optional: 1GiB, 500MB)"
        )
    value = float(found.group(1)) * scale if "." in found.group(1) else int(found.group(1)) * scale
    if value != int(value):
        raise Invalid(f"{text!r} is not a whole number of bytes")
    return int(value)


def _number(count: float) -> str:
    """`7`, `1.5`, `0.25`: no exponent, no trailing zeros."""
    if count == int(count):
        return str(int(count))
    return f"{count:.6f}".rstrip("0").rstrip(".")


def _plural(count: float, word: str) -> str:
    shown = _number(count)
    return f"{shown} {word}" if shown == "1" else f"{shown} {word}s"


def show_duration(seconds: float) -> str:
    """`604800` -> `7 days`, `5400` -> `1.5 hours`, `1.5` -> `1.5 seconds`: the largest unit
    that shows it exactly (to 3 digits after the point)."""
    for word, size in _SHOWN_DURATIONS:
        count = seconds / size
        if count >= 1 and round(count, 3) == count:
            return _plural(count, word)
    return _plural(seconds, "second")


def show_size(size: int) -> str:
    """`1073741824` -> `1 GiB`, `1536` -> `1.5 KiB`, `1000` -> `1000 bytes`: binary units where
    they show it exactly (to 3 digits after the point)."""
    for unit, scale in _SHOWN_SIZES:
        count = size / scale
        if count >= 1 and round(count, 3) == count:
            return f"{_number(count)} {unit}"
    return _plural(size, "byte")
