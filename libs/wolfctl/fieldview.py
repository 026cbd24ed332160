"""Every field of a node or profile as (FIELD, SOURCE, VALUE) rows, for `list -a`.

Fields are named by their dotted path (`network_devices.default.hwaddr`, the paths the
merged view's provenance uses); unset fields show too, so the list says what could be set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
from msgspec import inspect as mi

from libs.wolfctl.output import cell

# Identity of the object, not one of its settings: shown elsewhere (NODE column) or not at all.
IDENTITY = frozenset({"name", "revision"})

Row = tuple[str, str, str]


def _source(provenance: Mapping[str, Any], path: str) -> str:
    """Where a value came from; a path without an entry inherits its parent's source."""
    while True:
        if path in provenance:
            src = provenance[path]
            if isinstance(src, list):
                return ",".join(dict.fromkeys(str(s) for s in src))
            return str(src)
        if "." not in path:
            return ""
        path = path.rsplit(".", 1)[0]


class FieldLister:
    """Lists fields of model objects; keeps each class's type info for the run. Secrets are
    masked unless `reveal` (`--secrets`, the registry sent them)."""

    def __init__(self, *, reveal: bool = False) -> None:
        self._info: dict[type, mi.StructType] = {}
        self._reveal = reveal

    def _fields(self, cls: type) -> tuple[mi.Field, ...]:
        info = self._info.get(cls)
        if info is None:
            found = mi.type_info(cls)
            assert isinstance(found, mi.StructType)
            info = self._info[cls] = found
        return info.fields

    def rows(self, obj: msgspec.Struct, provenance: Mapping[str, Any]) -> list[Row]:
        out: list[Row] = []
        self._walk(obj, "", provenance, out, root=True)
        return out

    def _walk(
        self,
        obj: msgspec.Struct,
        prefix: str,
        provenance: Mapping[str, Any],
        out: list[Row],
        root: bool = False,
    ) -> None:
        for f in self._fields(type(obj)):
            if root and f.name in IDENTITY:
                continue
            path = prefix + f.name
            value = getattr(obj, f.name)
            t = f.type
            secret = False
            if isinstance(t, mi.Metadata):
                secret = bool((t.extra or {}).get("secret")) and not self._reveal
                t = t.type
            if isinstance(t, mi.UnionType):
                t = next((u for u in t.types if not isinstance(u, mi.NoneType)), t)
            if isinstance(t, mi.StructType):
                self._walk(value if value is not None else t.cls(), path + ".", provenance, out)
            elif isinstance(t, mi.DictType) and value:
                for key in sorted(value):
                    item = value[key]
                    if isinstance(item, msgspec.Struct):
                        self._walk(item, f"{path}.{key}.", provenance, out)
                    else:
                        sub = f"{path}.{key}"
                        out.append((sub, _source(provenance, sub), cell(item, secret=secret)))
            else:
                text = cell(value, secret=secret)
                out.append((path, _source(provenance, path) if text else "", text))
