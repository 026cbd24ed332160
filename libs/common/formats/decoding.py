"""Decode JSON into msgspec types with errors that name the field, map keys included.

msgspec reports where decoding failed as `$.network_devices[...].mtu`: the map key is lost.
People name a network device by its key, so the key is found again here by re-checking each
entry of that map, in document order, the way msgspec walked it.
"""

from __future__ import annotations

import re
from types import UnionType
from typing import Annotated, Any, Final, TypeVar, Union, get_args, get_origin

import msgspec

from libs.common.errors import Invalid

T = TypeVar("T")

_SEGMENT: Final = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")


def decode_json(body: bytes, model: type[T]) -> T:
    """`model` from JSON `body`; any problem is `Invalid` naming the field (`a.b.c`)."""
    if not body.strip():
        raise Invalid(f"request body is empty; expected a JSON {getattr(model, '__name__', model)}")
    try:
        return msgspec.json.decode(body, type=model)
    except msgspec.ValidationError as exc:
        message, path = split_validation_error(str(exc))
        raise Invalid(message, field=_name_keys(model, body, path)) from None
    except msgspec.DecodeError as exc:
        raise Invalid(f"request body is not valid JSON: {exc}") from None


def split_validation_error(text: str) -> tuple[str, str]:
    """`Expected `int`, got `str` - at `$.a[...].b`` → (`Expected ...`, `.a[...].b`)."""
    message, sep, where = text.partition(" - at `$")
    path = where.rstrip("`") if sep else ""
    # A missing or unknown key is reported at its parent; name the key itself.
    for marker in ("missing required field `", "contains unknown field `"):
        if marker in message:
            path += "." + message.split(marker, 1)[1].split("`", 1)[0]
    return message, path


def _name_keys(model: Any, body: bytes, path: str) -> str | None:
    """msgspec's path with `[...]` replaced by the key, as a dotted field name."""
    names: list[str] = []
    doc: Any = msgspec.json.decode(body) if "[...]" in path else None
    kind: Any = model
    for field, index in _SEGMENT.findall(path):
        kind = _unwrap(kind, doc)
        if field:
            names.append(field)
            kind = _field_type(kind, field)
            doc = doc.get(field) if isinstance(doc, dict) else None
        elif index == "...":
            value_type = get_args(kind)[1] if get_origin(kind) is dict else Any
            key = _first_invalid_key(doc, value_type)
            names.append(key if key is not None else "[...]")
            doc = doc.get(key) if isinstance(doc, dict) and key is not None else None
            kind = value_type
        else:
            names[-1:] = [f"{names[-1] if names else ''}[{index}]"]
            kind = (get_args(kind) or (Any,))[0]
            doc = doc[int(index)] if isinstance(doc, list) and int(index) < len(doc) else None
    return ".".join(names) or None


def _unwrap(kind: Any, doc: Any) -> Any:
    """Strip Annotated; of a union, keep the member shaped like the document (map or list)."""
    while get_origin(kind) is Annotated:
        kind = get_args(kind)[0]
    if get_origin(kind) in (Union, UnionType):
        members = [m for m in get_args(kind) if m is not type(None)]
        wanted = list if isinstance(doc, list) else dict
        shaped = [m for m in members if (get_origin(m) or m) is wanted]
        kind = (shaped or members or [Any])[0]
        return _unwrap(kind, doc)
    return kind


def _field_type(kind: Any, encoded_name: str) -> Any:
    if isinstance(kind, type) and issubclass(kind, msgspec.Struct):
        for info in msgspec.structs.fields(kind):
            if info.encode_name == encoded_name:
                return info.type
    return Any


def _first_invalid_key(doc: Any, value_type: Any) -> str | None:
    if not isinstance(doc, dict):
        return None
    for key, value in doc.items():
        try:
            msgspec.convert(value, value_type)
        except msgspec.ValidationError:
            return str(key)
    return None
