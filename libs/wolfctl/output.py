"""Printing: aligned tables like wwctl's, and objects as JSON or YAML through msgspec.

Tables are plain aligned text: rich took 1.9 s to lay out 10,000 rows here, and a node list
must come back in well under that. YAML (pyyaml) is imported only when asked for.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import click
import msgspec

from libs.common.security.redact import MASK

EMPTY = "--"
SECRET = MASK  # what the registry answers for a secret, unless asked with --secrets
GAP = "  "


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Columns padded to their widest cell, the header underlined, empty cells as `--`."""
    body = [[cell or EMPTY for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in body:
        for i, cell in enumerate(row):
            if len(cell) > widths[i]:
                widths[i] = len(cell)
    last = len(headers) - 1

    def line(cells: Sequence[str]) -> str:
        # The last column is not padded: no trailing blanks.
        return GAP.join(c if i == last else c.ljust(widths[i]) for i, c in enumerate(cells))

    out = [line(headers), line(["-" * len(h) for h in headers])]
    out.extend(line(row) for row in body)
    return "\n".join(out) + "\n"


def to_json(obj: Any) -> str:
    return msgspec.json.format(msgspec.json.encode(obj), indent=2).decode() + "\n"


def to_yaml(obj: Any) -> str:
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(
        msgspec.to_builtins(obj),
        Dumper=dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
    )


def dump(obj: Any, fmt: str) -> str:
    """`obj` (Structs, lists, dicts) as `json` or `yaml` text."""
    if fmt == "json":
        return to_json(obj)
    if fmt == "yaml":
        return to_yaml(obj)
    raise ValueError(f"not an object format: {fmt}")


def echo(text: str) -> None:
    click.echo(text, nl=False)


def cell(value: Any, *, secret: bool = False) -> str:
    """One value as table text: lists comma-joined, booleans lower case, secrets masked."""
    if value is None or value == [] or value == {}:
        return ""
    if secret:
        return SECRET
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return msgspec.json.encode(value).decode()
    return str(value)
