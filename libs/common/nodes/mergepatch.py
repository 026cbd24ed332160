"""JSON merge patch (RFC 7386): how `PATCH` and `wolfctl node set/unset` change stored objects.

Maps merge recursively, `null` removes a key (the field goes back to unset, i.e. inherited),
anything else (lists included) replaces the value whole.
"""

from __future__ import annotations

from typing import Any


def apply_merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return patch
    result: dict[str, Any] = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result
