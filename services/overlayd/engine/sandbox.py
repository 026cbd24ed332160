"""The sandbox templates run in: Jinja2's immutable sandbox (no underscore attributes, no
unsafe callables, no changing the shared context: `nodes` is one list for every node of a
wave), plus limits on what would build huge values (`'x' * 10**9`, `2 ** 10**8`,
`'%099999999d' % 1`, `'x'.center(10**9)`).

It also has a fast path for what templates do most: read plain dicts (`dev.ipaddr`,
`node.get("tags")`), strings (`name.upper()`) and loop state (`loop.first`). The fast path
gives what the sandbox would give; it only skips the sandbox's generic checks, which cost
more than the read itself when 10,000 nodes each run a dozen templates.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from types import BuiltinMethodType
from typing import Any, Final

from jinja2.runtime import LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

MAX_SEQUENCE: Final = 16 << 20
MAX_POWER_BITS: Final = 1 << 16
MAX_FORMAT_WIDTH: Final = 1 << 20
_FORMAT_WIDTH = re.compile(r"%[-#0 +]*(\d+|\*)?(?:\.(\d+|\*))?")

_DICT_ATTRIBUTES: Final = frozenset(dir(dict))
_DICT_READERS: Final = frozenset({"get", "items", "keys", "values"})
# str.format and format_map reach attributes of their arguments: the sandbox wraps them.
_STR_WRAPPED: Final = frozenset({"format", "format_map"})
_STR_WIDTH: Final = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
_LOOP_READS: Final = frozenset(
    {
        "index", "index0", "revindex", "revindex0", "first", "last", "length",
        "depth", "depth0", "previtem", "nextitem",
    }
)  # fmt: skip


class OverlayEnvironment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        kind = type(obj)
        if kind is dict:
            if attribute not in _DICT_ATTRIBUTES:
                # Not a dict method: Jinja2 falls back to the item, as here, without raising.
                try:
                    return obj[attribute]
                except KeyError:
                    return self.undefined(obj=obj, name=attribute)
            if attribute in _DICT_READERS:
                return getattr(obj, attribute)
        elif kind is str:
            if attribute[:1] != "_" and attribute not in _STR_WRAPPED:
                try:
                    return getattr(obj, attribute)
                except AttributeError:
                    return self.undefined(obj=obj, name=attribute)
        elif kind is LoopContext and attribute in _LOOP_READS:
            return getattr(obj, attribute)
        return super().getattr(obj, attribute)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        if type(__obj) is BuiltinMethodType:
            owner, name = type(__obj.__self__), __obj.__name__
            if name in _STR_WIDTH and owner is str:
                _check_width(name, args)
            if (owner is dict and name in _DICT_READERS) or (
                owner is str and name[:1] != "_" and name not in _STR_WRAPPED
            ):
                # Jinja2 passes its own bookkeeping along; Context.call drops it, so do we.
                kwargs.pop("_loop_vars", None)
                kwargs.pop("_block_vars", None)
                return __obj(*args, **kwargs)
        return super().call(__context, __obj, *args, **kwargs)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            _check_repeat(left, right)
            _check_repeat(right, left)
        elif operator == "**":
            numbers = isinstance(left, int) and isinstance(right, int) and right > 0
            if numbers and left.bit_length() * right > MAX_POWER_BITS:
                raise SecurityError(f"{left} ** {right} is too large a number")
        elif operator == "%" and isinstance(left, str):
            _check_format(left)
        return super().call_binop(context, operator, left, right)


def bounded_filters(filters: dict[str, Callable[..., Any]]) -> None:
    """The built-in filters that widen or format text, with the limits operators have."""
    center, indent, fmt = filters["center"], filters["indent"], filters["format"]

    def bounded_center(value: Any, width: int = 80) -> Any:
        _check_width("center", (width,))
        return center(value, width)

    def bounded_indent(value: Any, width: int | str = 4, *args: Any, **kwargs: Any) -> Any:
        size = len(width) if isinstance(width, str) else width
        _check_width("indent", (size,))
        return indent(value, width, *args, **kwargs)

    def bounded_format(value: Any, *args: Any, **kwargs: Any) -> Any:
        _check_format(str(value))
        return fmt(value, *args, **kwargs)

    filters.update(center=bounded_center, indent=bounded_indent, format=bounded_format)


def _check_format(text: str) -> None:
    for width, precision in _FORMAT_WIDTH.findall(text):
        for number in (width, precision):
            if number == "*" or (number and int(number) > MAX_FORMAT_WIDTH):
                raise SecurityError(f"format width {number!r} is too large")


def _check_repeat(sequence: Any, count: Any) -> None:
    repeated = isinstance(sequence, str | bytes | list | tuple) and isinstance(count, int)
    if repeated and len(sequence) * count > MAX_SEQUENCE:
        raise SecurityError(f"repeating {len(sequence)} items {count} times is too large")


def _check_width(name: str, args: tuple[Any, ...]) -> None:
    if args and isinstance(args[0], int) and args[0] > MAX_SEQUENCE:
        raise SecurityError(f"{name}({args[0]}) is too wide")
