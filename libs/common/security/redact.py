"""Secret fields (field metadata `secret`): masked on the way out, kept on the way back in.

An answer carries a secret only when it was asked for explicitly: every value set in a field
marked secret (the IPMI password, the asset key) reads as MASK. A write that sends MASK back,
as an object read, edited and put back does, keeps the value stored; MASK where nothing is
stored is refused, since it is not a value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Final, Generic, TypeVar

import msgspec
from msgspec import inspect as mi

from libs.common.errors import Invalid

MASK: Final = "********"
EVERY: Final = "*"  # a path step through every value of a map

T = TypeVar("T", bound=msgspec.Struct)
FieldPath = tuple[str, ...]


def secret_paths(cls: type[msgspec.Struct]) -> tuple[FieldPath, ...]:
    """Where `cls` holds secrets: field names from the root, EVERY for a map's values."""
    return tuple(dict.fromkeys(_paths(mi.type_info(cls), (), set())))


def _paths(t: mi.Type, prefix: FieldPath, seen: set[type]) -> Iterator[FieldPath]:
    if isinstance(t, mi.Metadata):
        if (t.extra or {}).get("secret"):
            yield prefix
            return
        t = t.type
    if isinstance(t, mi.UnionType):
        for member in t.types:
            yield from _paths(member, prefix, seen)
    elif isinstance(t, mi.StructType) and t.cls not in seen:
        for field in t.fields:
            yield from _paths(field.type, (*prefix, field.name), seen | {t.cls})
    elif isinstance(t, mi.DictType):
        yield from _paths(t.value_type, (*prefix, EVERY), seen)


class Secrets(Generic[T]):
    """The secret fields of one model, found once from its metadata."""

    def __init__(self, model: type[T]) -> None:
        self.model = model
        self.paths = secret_paths(model)

    def mask(self, obj: T) -> T:
        """A copy of `obj` with every secret that is set replaced by MASK."""
        for path in self.paths:
            obj = _apply(obj, path, _masked)
        return obj

    def mask_all(self, objs: list[T]) -> list[T]:
        return [self.mask(obj) for obj in objs]

    def keep_masked(self, new: T, stored: T | None) -> T:
        """`new` with each secret sent as MASK replaced by the value in `stored`; Invalid
        naming the field where there is none."""
        for path in self.paths:
            if _holds_mask(new, path):
                new = _restore(new, stored, path, "")
        return new


def _masked(value: Any) -> Any:
    return None if value is None else MASK


def _apply(value: Any, path: FieldPath, fn: Callable[[Any], Any]) -> Any:
    if not path:
        return fn(value)
    if value is None:
        return None
    head, rest = path[0], path[1:]
    if head == EVERY:
        if not isinstance(value, dict) or not value:
            return value
        return {key: _apply(item, rest, fn) for key, item in value.items()}
    child = getattr(value, head)
    new = _apply(child, rest, fn)
    return value if new is child else msgspec.structs.replace(value, **{head: new})


def _holds_mask(value: Any, path: FieldPath) -> bool:
    if not path:
        return bool(value == MASK)
    if value is None:
        return False
    head, rest = path[0], path[1:]
    if head == EVERY:
        return isinstance(value, dict) and any(_holds_mask(v, rest) for v in value.values())
    return _holds_mask(getattr(value, head), rest)


def _restore(new: Any, stored: Any, path: FieldPath, where: str) -> Any:
    if not path:
        if new != MASK:
            return new
        if stored is None:
            raise Invalid(
                f"{MASK!r} stands for a hidden secret and {where} has none stored: "
                "send the value itself",
                field=where,
            )
        return stored
    if new is None:
        return None
    head, rest = path[0], path[1:]
    if head == EVERY:
        if not isinstance(new, dict):
            return new
        old = stored if isinstance(stored, dict) else {}
        return {
            key: _restore(item, old.get(key), rest, f"{where}.{key}".lstrip("."))
            for key, item in new.items()
        }
    child = getattr(new, head)
    restored = _restore(child, getattr(stored, head, None), rest, f"{where}.{head}".lstrip("."))
    return new if restored is child else msgspec.structs.replace(new, **{head: restored})
