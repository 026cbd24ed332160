"""Which paths of a rootfs stay out of the image: Warewulf's `/etc/warewulf/excludes` semantics.

Warewulf (internal/pkg/util FindFilterFiles) reads one pattern a line, trims leading and trailing
`/`, and matches each against every path relative to the root with Go's `filepath.Match`: `*`
and `?` never cross a `/`, `[...]` / `[^...]` are classes, `\\` escapes. A directory that
matches is left out with everything below it; `/tmp/*` keeps `/tmp` and drops what is in it.
Python's fnmatch differs (its `*` crosses `/`, it negates with `!`), hence the translation here.
Lines starting with `#` and blank lines are skipped (Warewulf reads them as patterns that match
nothing, so the result is the same).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from libs.common.errors import Invalid
from libs.common.fs.rootpath import find_in_root

log = logging.getLogger("wolfpack.builder.vnfs")

IMAGE_EXCLUDES_FILE = "/etc/warewulf/excludes"

# The builder's own excludes, used unless the caller passes its list. /boot goes (the kernel is
# delivered on its own, as in Warewulf's images); package caches and lists are re-fetched by
# apt/dnf when needed. /dev is kept as the image ships it: the kernel opens /dev/console from the
# initramfs for init's stdio before anything mounts devtmpfs, so an image's console node must
# survive. /proc, /sys and /tmp keep their directories (mount points) and lose their contents.
DEFAULT_EXCLUDES: tuple[str, ...] = (
    "/boot/",
    "/var/cache/apt/archives/*.deb",
    "/var/cache/apt/*.bin",
    "/var/cache/dnf/*",
    "/var/cache/yum/*",
    "/var/lib/apt/lists/*",
    "/tmp/*",
    "/proc/*",
    "/sys/*",
)


class BadPattern(ValueError):
    """A pattern Go's filepath.Match would reject (ErrBadPattern)."""


def translate(pattern: str) -> str:
    """A Go `filepath.Match` pattern → an equivalent Python regular expression (for fullmatch)."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        i += 1
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "\\":
            if i >= n:
                raise BadPattern(f"{pattern!r}: ends with an escaping backslash")
            out.append(re.escape(pattern[i]))
            i += 1
        elif char == "[":
            klass, i = _translate_class(pattern, i)
            out.append(klass)
        else:
            out.append(re.escape(char))
    return "".join(out)


def _translate_class(pattern: str, i: int) -> tuple[str, int]:
    """`[` already consumed at i-1; returns the regex class and the index after `]`."""
    n = len(pattern)
    negate = i < n and pattern[i] == "^"
    if negate:
        i += 1
    ranges: list[str] = []
    while True:
        if i >= n:
            raise BadPattern(f"{pattern!r}: '[' without a closing ']'")
        if pattern[i] == "]" and ranges:
            return ("[^" if negate else "[") + "".join(ranges) + "]", i + 1
        low, i = _class_char(pattern, i)
        if i < n and pattern[i] == "-":
            high, i = _class_char(pattern, i + 1)
            if high < low:
                raise BadPattern(f"{pattern!r}: range {low}-{high} is backwards")
            ranges.append(f"{re.escape(low)}-{re.escape(high)}")
        else:
            ranges.append(re.escape(low))


def _class_char(pattern: str, i: int) -> tuple[str, int]:
    n = len(pattern)
    if i >= n or pattern[i] in "-]":
        raise BadPattern(f"{pattern!r}: malformed character class")
    if pattern[i] == "\\":
        i += 1
        if i >= n:
            raise BadPattern(f"{pattern!r}: ends with an escaping backslash")
    return pattern[i], i + 1


class Excludes:
    """A compiled set of patterns; `matches(rel)` takes a path relative to the root, no `./`."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(p for p in (_clean(p) for p in patterns) if p)
        regexes = [translate(p) for p in self.patterns]
        self._regex = re.compile("|".join(f"(?:{r})" for r in regexes)) if regexes else None

    def matches(self, rel: str) -> bool:
        return self._regex is not None and self._regex.fullmatch(rel) is not None


def _clean(pattern: str) -> str:
    return pattern.strip().strip("/")


def parse_excludes_text(text: str, *, source: str) -> list[str]:
    """Patterns of an excludes file; a pattern Go would reject is skipped with a warning, as
    Warewulf ignores it (it never matches there)."""
    patterns: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        try:
            translate(_clean(pattern))
        except BadPattern as err:
            log.warning("%s line %d: ignored: %s", source, number, err)
            continue
        patterns.append(pattern)
    return patterns


def image_excludes(rootfs: Path) -> list[str]:
    """The patterns of the image's own `/etc/warewulf/excludes` (none if it has no such file)."""
    path = find_in_root(rootfs, IMAGE_EXCLUDES_FILE)
    if path is None or not path.is_file():
        return []
    text = path.read_bytes().decode("utf-8", errors="surrogateescape")
    return parse_excludes_text(text, source=IMAGE_EXCLUDES_FILE)


def build_excludes(rootfs: Path, excludes: Sequence[str] | None) -> Excludes:
    """The caller's patterns (the builder defaults when None) plus the image's own file."""
    chosen = DEFAULT_EXCLUDES if excludes is None else tuple(excludes)
    for pattern in chosen:
        try:
            translate(_clean(pattern))
        except BadPattern as err:
            raise Invalid(f"bad exclude pattern: {err}", field="excludes") from None
    return Excludes([*chosen, *image_excludes(rootfs)])
