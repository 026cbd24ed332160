"""JSON merge patches (RFC 7386) from the generated options' values.

`set` sends only what the user gave; `unset` sends `null` for each field named. Both read
click's keyword arguments by the parameter names libs.wolfctl.flags gave the options.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import click

from libs.wolfctl.flags import (
    FieldFlag,
    ModelFlags,
    TagMap,
    key_marker,
    marker_scope,
    selector_flag,
)


def split_list(values: Iterable[str]) -> list[str]:
    """`("a,b", "c")` -> `["a", "b", "c"]`: repeated and comma-separated both work."""
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def parse_tags(values: Iterable[str], option: str) -> dict[str, str]:
    """`("a=1,b=2", "c=3")` -> `{"a": "1", "b": "2", "c": "3"}`."""
    tags: dict[str, str] = {}
    for item in split_list(values):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint=f"--{option}")
        tags[key.strip()] = value.strip()
    return tags


def selected_keys(flags: ModelFlags, params: Mapping[str, Any]) -> dict[str, str]:
    """Scope -> the map key its selector picked (`{"net": "default"}`)."""
    keys: dict[str, str] = {}
    for scope in flags.selectors:
        key = str(params.get(selector_flag(scope)) or "").strip()
        if not key:
            raise click.BadParameter("must not be empty", param_hint=f"--{selector_flag(scope)}")
        keys[scope] = key
    return keys


def concrete_path(path: tuple[str, ...], keys: Mapping[str, str]) -> tuple[str, ...]:
    """Replace each `<scope>` placeholder by the key selected for that scope."""
    return tuple(keys[scope] if (scope := marker_scope(part)) else part for part in path)


def put_path(doc: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        doc = doc.setdefault(part, {})
    doc[path[-1]] = value


def pop_path(doc: dict[str, Any], path: tuple[str, ...]) -> Any:
    """Remove and return the value at `path` (None if absent), dropping maps left empty."""
    parents = []
    node: Any = doc
    for part in path[:-1]:
        if not isinstance(node, dict) or part not in node:
            return None
        parents.append((node, part))
        node = node[part]
    if not isinstance(node, dict):
        return None
    value = node.pop(path[-1], None)
    for parent, part in reversed(parents):
        if parent[part] == {}:
            del parent[part]
    return value


def given_value(field: FieldFlag, params: Mapping[str, Any]) -> Any:
    """The value to send for a field, or None when the user did not give its flag."""
    raw = params.get(field.param)
    if field.kind == "list":
        return split_list(raw) if raw else None
    return raw


def set_patch(flags: ModelFlags, params: Mapping[str, Any]) -> dict[str, Any]:
    """A merge patch holding exactly the flags given: values, tags added, tags deleted."""
    keys = selected_keys(flags, params)
    patch: dict[str, Any] = {}
    for field in flags.fields:
        value = given_value(field, params)
        if value is not None:
            put_path(patch, concrete_path(field.path, keys), value)
    for tags in flags.tags:
        _tag_changes(patch, tags, keys, params)
    return patch


def _tag_changes(
    patch: dict[str, Any], tags: TagMap, keys: Mapping[str, str], params: Mapping[str, Any]
) -> None:
    path = concrete_path(tags.path, keys)
    for key in split_list(params.get(tags.del_flag) or ()):
        put_path(patch, (*path, key), None)
    for key, value in parse_tags(params.get(tags.add_flag) or (), tags.add_flag).items():
        put_path(patch, (*path, key), value)


def unset_patch(
    flags: ModelFlags, params: Mapping[str, Any], explicit_selectors: Iterable[str] = ()
) -> dict[str, Any]:
    """A merge patch setting each named field to `null` (unset, so inherited again).

    A selector given explicitly with none of its scope's fields (`unset --netname eth1`)
    removes that whole entry, as `wwctl node unset --netname` does.
    """
    keys = selected_keys(flags, params)
    patch: dict[str, Any] = {}
    touched: set[str] = set()
    for field in flags.fields:
        if params.get(field.param):
            put_path(patch, concrete_path(field.path, keys), None)
            if field.scope:
                touched.add(field.scope)
    for tags in flags.tags:
        names = split_list(params.get(tags.unset_flag) or ())
        path = concrete_path(tags.path, keys)
        for key in names:
            put_path(patch, (*path, key), None)
        if names and tags.prefix:
            touched.add(tags.prefix)
    for scope in explicit_selectors:
        if scope in touched:
            continue
        entry = next(f.path for f in flags.fields if f.scope == scope)
        keyed = entry[: entry.index(key_marker(scope)) + 1]
        put_path(patch, concrete_path(keyed, keys), None)
    return patch
