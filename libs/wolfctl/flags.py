"""Click options generated from the model's field metadata (patches.py turns values into patches).

Each model field whose Meta.extra has a `flag` becomes an option (`short` too); fields of a
sub-struct (kernel, ipmi) live at that struct's path, and fields of a map of structs
(network_devices) at the key chosen by `--<scope>name` (`--netname`, default `default`).
A map field called `tags` gets `--<scope>tagadd k=v` and `--<scope>tagdel k` (`--tagadd`,
`--nettagadd`, `--ipmitagadd`). A field added to the model gets its flag with no change here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
import msgspec
from msgspec import inspect as mi

F = TypeVar("F", bound=Callable[..., Any])

# Stands for a map key while walking the model; becomes key_marker(scope) once the scope is known.
_PENDING_KEY = "<?>"
TAGS_FIELD = "tags"
DEFAULT_KEY = "default"

_SCALARS: dict[type[mi.Type], tuple[str, click.ParamType]] = {
    mi.StrType: ("str", click.STRING),
    mi.IntType: ("int", click.INT),
    mi.FloatType: ("float", click.FLOAT),
    mi.BoolType: ("bool", click.BOOL),
}
_PARAM_TYPES = dict(_SCALARS.values())


class FieldFlag(msgspec.Struct, frozen=True, kw_only=True):
    """One option bound to one model field."""

    path: tuple[str, ...]  # field names from the object's root; "<scope>" = selected map key
    flag: str
    short: str | None = None
    help: str = ""
    kind: str  # str | int | float | bool | list
    scope: str | None = None
    secret: bool = False

    @property
    def param(self) -> str:
        """Click's parameter name; prefixed so it never meets a verb's own options."""
        return "f_" + self.flag.replace("-", "_")


class TagMap(msgspec.Struct, frozen=True, kw_only=True):
    """A `tags` map and the prefix of its options (`""`, `net`, `ipmi`)."""

    path: tuple[str, ...]
    prefix: str

    @property
    def add_flag(self) -> str:
        return f"{self.prefix}tagadd"

    @property
    def del_flag(self) -> str:
        return f"{self.prefix}tagdel"

    @property
    def unset_flag(self) -> str:
        # Warewulf's `unset --tag/--nettag/--ipmitag`.
        return f"{self.prefix}tag"


class ModelFlags(msgspec.Struct, frozen=True, kw_only=True):
    fields: tuple[FieldFlag, ...]
    tags: tuple[TagMap, ...]
    selectors: tuple[str, ...]  # scopes whose map key an option picks: ("net",)

    def by_flag(self, flag: str) -> FieldFlag | None:
        return next((f for f in self.fields if f.flag == flag), None)


def selector_flag(scope: str) -> str:
    return f"{scope}name"


def key_marker(scope: str) -> str:
    """The path element standing for the map key chosen by `--<scope>name`."""
    return f"<{scope}>"


def marker_scope(part: str) -> str | None:
    """`"<net>"` -> `"net"`; a plain field name -> None."""
    return part[1:-1] if part.startswith("<") and part.endswith(">") else None


def _unwrap(t: mi.Type) -> tuple[dict[str, Any], str, mi.Type]:
    """(extra, description, type without Annotated metadata and without `| None`)."""
    extra: dict[str, Any] = {}
    help_text = ""
    if isinstance(t, mi.Metadata):
        extra = dict(t.extra or {})
        help_text = str((t.extra_json_schema or {}).get("description", ""))
        t = t.type
    if isinstance(t, mi.UnionType):
        rest = [u for u in t.types if not isinstance(u, mi.NoneType)]
        if len(rest) == 1:
            t = rest[0]
    return extra, help_text, t


def _kind(t: mi.Type, where: str) -> str:
    if isinstance(t, mi.ListType) and isinstance(t.item_type, mi.StrType):
        return "list"
    for cls, (kind, _) in _SCALARS.items():
        if isinstance(t, cls):
            return kind
    raise TypeError(f"{where}: wolfctl cannot make a flag for a field of type {t!r}")


def _walk(
    info: mi.StructType, prefix: tuple[str, ...], out: list[FieldFlag], tags: list[TagMap]
) -> None:
    own: list[FieldFlag] = []
    tag_paths: list[tuple[str, ...]] = []
    for f in info.fields:
        extra, help_text, t = _unwrap(f.type)
        path = (*prefix, f.name)
        if "flag" in extra:
            flag = FieldFlag(
                path=path,
                flag=extra["flag"],
                short=extra.get("short"),
                help=help_text,
                kind=_kind(t, ".".join(path)),
                scope=extra.get("scope"),
                secret=bool(extra.get("secret")),
            )
            own.append(flag)
            out.append(flag)
        elif isinstance(t, mi.StructType):
            _walk(t, path, out, tags)
        elif isinstance(t, mi.DictType) and isinstance(t.value_type, mi.StructType):
            _walk(t.value_type, (*path, _PENDING_KEY), out, tags)
        elif (
            f.name == TAGS_FIELD
            and isinstance(t, mi.DictType)
            and isinstance(t.value_type, mi.StrType)
        ):
            tag_paths.append(path)
    # A tags map takes its option prefix from the scope its sibling fields' flags declare.
    scopes = {f.scope for f in own if f.scope}
    prefix_name = scopes.pop() if len(scopes) == 1 else ""
    tags.extend(TagMap(path=p, prefix=prefix_name) for p in tag_paths)


def _resolve_keys(path: tuple[str, ...], scope: str | None) -> tuple[str, ...]:
    if _PENDING_KEY not in path:
        return path
    if not scope:
        raise TypeError(f"{'.'.join(path)}: a flag inside a map needs a `scope` to select the key")
    return tuple(key_marker(scope) if p == _PENDING_KEY else p for p in path)


def model_flags(model: type[msgspec.Struct]) -> ModelFlags:
    """Every flag the model declares, with the path each one edits."""
    info = mi.type_info(model)
    assert isinstance(info, mi.StructType)
    raw_fields: list[FieldFlag] = []
    raw_tags: list[TagMap] = []
    _walk(info, (), raw_fields, raw_tags)
    fields = tuple(
        msgspec.structs.replace(f, path=_resolve_keys(f.path, f.scope)) for f in raw_fields
    )
    tags = tuple(msgspec.structs.replace(t, path=_resolve_keys(t.path, t.prefix)) for t in raw_tags)
    selectors = tuple(
        dict.fromkeys(f.scope for f in fields if f.scope and key_marker(f.scope) in f.path)
    )
    return ModelFlags(fields=fields, tags=tags, selectors=selectors)


def _names(flag: str, short: str | None) -> list[str]:
    return [f"--{flag}", f"-{short}"] if short else [f"--{flag}"]


def _apply(fn: F, options: list[tuple[list[str], dict[str, Any]]]) -> F:
    # click lists options in the reverse order of decoration.
    for decls, attrs in reversed(options):
        fn = click.option(*decls, **attrs)(fn)
    return fn


def _selector_options(flags: ModelFlags, note: str = "") -> list[tuple[list[str], dict[str, Any]]]:
    options = []
    for scope in flags.selectors:
        path = next(f.path for f in flags.fields if key_marker(scope) in f.path)
        where = path[path.index(key_marker(scope)) - 1]
        options.append(
            (
                [f"--{selector_flag(scope)}", selector_flag(scope)],
                {
                    "default": DEFAULT_KEY,
                    "show_default": True,
                    "metavar": "NAME",
                    "help": f"which entry of {where} the {scope} flags change{note}",
                },
            )
        )
    return options


# A secret on the command line is in `ps` and the shell's history (wwctl's --ipmipass is too).
STDIN_SECRET = "-"
STDIN_SECRET_HELP = "'-' reads it from standard input, or asks for it on a terminal"


def _secret_from_stdin(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """`--ipmipass -`: the value from stdin's next line (a prompt without echo on a terminal)."""
    if value != STDIN_SECRET:
        return value
    flag = param.opts[0]
    stdin = sys.stdin  # one reader for every such flag: a fresh wrapper would skip buffered lines
    if stdin.isatty():
        return click.prompt(flag.lstrip("-"), hide_input=True, err=True)
    line = stdin.readline()
    if not line:
        raise click.BadParameter(f"standard input ended before {flag}'s value", ctx, param)
    secret = line.rstrip("\r\n")
    if not secret:
        raise click.BadParameter(f"standard input gave an empty line for {flag}", ctx, param)
    return secret


def set_options(flags: ModelFlags, *, create: bool = False) -> Callable[[F], F]:
    """Value options for `add` and `set`: one per field flag, selectors, tag add/delete.

    `create` (for `add`) leaves out the tag delete options: a new object has no tags to delete.
    """
    options: list[tuple[list[str], dict[str, Any]]] = []
    for f in flags.fields:
        decls = [*_names(f.flag, f.short), f.param]
        if f.kind == "list":
            attrs: dict[str, Any] = {
                "multiple": True,
                "metavar": "A,B,...",
                "help": f"{f.help} (comma-separated)",
            }
        else:
            attrs = {"type": _PARAM_TYPES[f.kind], "default": None, "help": f.help}
            if f.kind == "bool":
                attrs["metavar"] = "yes|no"
            if f.secret and f.kind == "str":
                attrs["callback"] = _secret_from_stdin
                attrs["help"] = f"{f.help} ({STDIN_SECRET_HELP})"
        options.append((decls, attrs))
    options += _selector_options(flags)
    for t in flags.tags:
        where = f"{t.prefix} " if t.prefix else ""
        options.append(
            (
                [f"--{t.add_flag}", t.add_flag],
                {"multiple": True, "metavar": "KEY=VALUE", "help": f"add or change {where}tags"},
            )
        )
        if create:
            continue
        options.append(
            (
                [f"--{t.del_flag}", t.del_flag],
                {"multiple": True, "metavar": "KEY", "help": f"delete {where}tags"},
            )
        )

    def decorate(fn: F) -> F:
        return _apply(fn, options)

    return decorate


def unset_options(flags: ModelFlags) -> Callable[[F], F]:
    """Boolean options for `unset`: the same flag names, each resetting its field."""
    options: list[tuple[list[str], dict[str, Any]]] = [
        ([f"--{f.flag}", f.param], {"is_flag": True, "default": False, "help": f"unset: {f.help}"})
        for f in flags.fields
    ]
    options += _selector_options(flags, "; given alone, removes the whole entry")
    for t in flags.tags:
        where = f"{t.prefix} " if t.prefix else ""
        options.append(
            (
                [f"--{t.unset_flag}", t.unset_flag],
                {"multiple": True, "metavar": "KEY", "help": f"delete {where}tags"},
            )
        )

    def decorate(fn: F) -> F:
        return _apply(fn, options)

    return decorate
