"""Paths inside an overlay: relative, normalised, never escaping the overlay's root."""

from __future__ import annotations

import re
from typing import Final

from libs.common.errors import Invalid

TEMPLATE_SUFFIX: Final = ".j2"
META_FILE: Final = ".meta.json"
MAX_PATH: Final = 4096
MAX_COMPONENT: Final = 255
# Overlay names: as Warewulf spells them (ssh.host_keys, NetworkManager), safe as a KV key.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def overlay_path(text: str, *, what: str = "path") -> str:
    """`text` as a path inside an overlay: `/etc//hosts` and `etc/./hosts` are `etc/hosts`.
    `..`, NUL bytes, the root itself and over-long names are refused."""
    if "\x00" in text:
        raise Invalid(f"{what} {text!r} has a NUL byte", field="path")
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if not parts:
        raise Invalid(f"{what} {text!r} names the overlay root, not a file in it", field="path")
    if ".." in parts:
        raise Invalid(f"{what} {text!r} leaves the overlay ('..'); refused", field="path")
    if any(len(part.encode()) > MAX_COMPONENT for part in parts):
        raise Invalid(f"{what} {text!r} has a name longer than {MAX_COMPONENT} bytes", field="path")
    path = "/".join(parts)
    if len(path.encode()) > MAX_PATH:
        raise Invalid(f"{what} {text[:80]!r}... is longer than {MAX_PATH} bytes", field="path")
    return path


def output_path(path: str) -> str:
    """Where a tree entry lands on the node: a template loses its `.j2`."""
    return path.removesuffix(TEMPLATE_SUFFIX) if is_template(path) else path


def is_template(path: str) -> bool:
    return path.endswith(TEMPLATE_SUFFIX) and len(path.rsplit("/", 1)[-1]) > len(TEMPLATE_SUFFIX)


def parents(path: str) -> list[str]:
    """`a/b/c` → [`a`, `a/b`]."""
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def check_overlay_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise Invalid(
            f"invalid overlay name {name!r}: use letters, digits, '.', '_' and '-' "
            "(at most 64, starting with a letter or digit)",
            field="name",
        )
    return name


def parse_mode(value: object, *, what: str = "mode") -> int:
    """Permission bits from an int or an octal string (`"0644"`, `"644"`, `"0o644"`)."""
    if isinstance(value, bool):
        raise Invalid(f"{what} {value!r} is not a file mode", field="mode")
    if isinstance(value, str):
        digits = value.strip().lower().removeprefix("0o")
        if not re.fullmatch(r"[0-7]{1,5}", digits):
            raise Invalid(f"{what} {value!r} is not an octal file mode like '0644'", field="mode")
        mode = int(digits, 8)
    elif isinstance(value, int):
        mode = value
    else:
        raise Invalid(f"{what} {value!r} is not a file mode", field="mode")
    if not 0 <= mode <= 0o7777:
        raise Invalid(f"{what} {oct(mode)} is out of range (0 to 0o7777)", field="mode")
    return mode
