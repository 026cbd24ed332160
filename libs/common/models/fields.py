"""Field metadata: each model field is declared once, with what the other layers derive from it.

`Meta.extra` keys:
- `ww`: the key in a Warewulf 4 nodes.conf when it differs from the field name;
- `flag`: wolfctl's long option (Warewulf's spelling), `short` its short option;
- `scope`: which wolfctl sub-object the flag edits (`net` for the device chosen by --netname,
  `ipmi`, `kernel`);
- `secret`: never printed in logs, events or list output.
"""

from __future__ import annotations

from typing import Any

import msgspec


def meta(
    help: str,
    *,
    ww: str | None = None,
    flag: str | None = None,
    short: str | None = None,
    scope: str | None = None,
    secret: bool = False,
) -> msgspec.Meta:
    extra: dict[str, Any] = {}
    if ww:
        extra["ww"] = ww
    if flag:
        extra["flag"] = flag
    if short:
        extra["short"] = short
    if scope:
        extra["scope"] = scope
    if secret:
        extra["secret"] = True
    return msgspec.Meta(description=help, extra=extra)


def field_extras(cls: type) -> dict[str, dict[str, Any]]:
    """Field name -> Meta.extra for a Struct class (empty dict where none)."""
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    out: dict[str, dict[str, Any]] = {}
    for f in info.fields:
        extra: dict[str, Any] = {}
        t = f.type
        if isinstance(t, msgspec.inspect.Metadata) and t.extra:
            extra = dict(t.extra)
        out[f.name] = extra
    return out


def field_help(cls: type) -> dict[str, str]:
    """Field name -> description for a Struct class."""
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    out: dict[str, str] = {}
    for f in info.fields:
        t = f.type
        if isinstance(t, msgspec.inspect.Metadata) and t.extra_json_schema:
            out[f.name] = str(t.extra_json_schema.get("description", ""))
        else:
            out[f.name] = ""
    return out
