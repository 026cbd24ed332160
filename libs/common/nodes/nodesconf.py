"""Warewulf 4 `nodes.conf` YAML import and export, keeping every field.

The YAML keys come from the model: a field's `ww` metadata where set (`network devices`,
`image name`, ...), else its name. Loading walks the model's type information, so every
struct, map and list is handled the same way and a new model field needs no code here.
Warewulf spells numbers as quoted strings and booleans as strings or YAML booleans: both
load; numbers are written back as quoted strings, as Warewulf writes them. An unknown key is
refused with its path, so nothing is silently lost. The YAML is read with the 1.2 core schema,
as Warewulf's Go library reads it: `hwaddr: 52:54:00:10:00:11` stays a MAC, not a number.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from typing import Any, TypeVar

import msgspec
import yaml
from msgspec import inspect as mi

try:  # libyaml's parser and emitter, where PyYAML was built with them: several times faster
    from yaml import CSafeDumper as _Dumper
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover
    from yaml import SafeDumper as _Dumper  # type: ignore[assignment]
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

from libs.common.errors import Invalid
from libs.common.formats.yamlerror import yaml_problem
from libs.common.models.fields import field_extras
from libs.common.models.node import Kernel, Node, Profile, ProfileFields

S = TypeVar("S", Node, Profile)

# Set by the store, not the file: the map key is the name and nodes.conf has no revisions.
_NOT_IN_FILE = frozenset({"name", "revision"})
_TOP_LEVEL = ("nodeprofiles", "nodes")
_OBSOLETE_TOP_LEVEL = frozenset({"WW_INTERNAL"})  # a format marker of Warewulf <= 4.5
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


def load_nodes_conf(text: str) -> tuple[dict[str, Profile], dict[str, Node]]:
    """Parse a nodes.conf: (profiles, nodes), each by name. Invalid names the bad key path."""
    reader = _Reader(text)
    try:
        root = reader.root()
        if root is None:
            return {}, {}
        top = reader.mapping(root, "nodes.conf")
        for key in top:
            if key not in _TOP_LEVEL and key not in _OBSOLETE_TOP_LEVEL:
                raise Invalid(f"unknown key {key!r}", field=key)
        profiles = _load_section(reader, top.get("nodeprofiles"), "nodeprofiles", Profile)
        nodes = _load_section(reader, top.get("nodes"), "nodes", Node)
    finally:
        reader.dispose()
    return profiles, nodes


def dump_nodes_conf(profiles: Mapping[str, Profile], nodes: Mapping[str, Node]) -> str:
    """nodes.conf YAML for these objects; `load_nodes_conf` gives them back unchanged."""
    doc = {
        "nodeprofiles": {
            name: _encode(p, _info(Profile), top=True) for name, p in profiles.items()
        },
        "nodes": {name: _encode(n, _info(Node), top=True) for name, n in nodes.items()},
    }
    return yaml.dump(
        doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True
    )


def _load_section(
    reader: _Reader, body: yaml.Node | None, section: str, cls: type[S]
) -> dict[str, S]:
    if body is None or _is_null(body):
        return {}
    out: dict[str, S] = {}
    for name, value in reader.mapping(body, section).items():
        obj = _decode_struct(reader, value, _info(cls), f"{section}.{name}", top=True)
        out[name] = msgspec.structs.replace(obj, name=name)
    return out


_NULL_TAG = "tag:yaml.org,2002:null"


def _core_resolvers() -> dict[Any, list[tuple[str, re.Pattern[str]]]]:
    """PyYAML's null and merge rules plus YAML 1.2 core booleans, integers and floats."""
    out: dict[Any, list[tuple[str, re.Pattern[str]]]] = {
        first: [(tag, rx) for tag, rx in rules if tag.rsplit(":", 1)[1] in ("null", "merge")]
        for first, rules in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    for tag, pattern, firsts in (
        ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
        ("int", r"^(?:[-+]?(?:0|[1-9][0-9]*)|0x[0-9a-fA-F]+)$", "-+0123456789"),
        (
            "float",
            r"^(?:[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+][0-9]+)?"
            r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
            "-+0123456789.",
        ),
    ):
        for first in firsts:
            out.setdefault(first, []).append((f"tag:yaml.org,2002:{tag}", re.compile(pattern)))
    return out


class _CoreLoader(_Loader):
    """YAML 1.2 core schema, as Warewulf's Go YAML library reads: no `yes`/`no` booleans, no
    base-60 numbers (`52:54:00:10:00:12` stays a MAC) and no implicit dates. Each rule
    accepts a subset of what PyYAML's dumper quotes, so what `dump` writes reads back.
    """

    yaml_implicit_resolvers = _core_resolvers()


class _Reader:
    """One document's node graph: typed fields read scalars' text, free-form values construct."""

    def __init__(self, text: str) -> None:
        self._loader = _CoreLoader(text)

    def root(self) -> yaml.Node | None:
        try:
            return self._loader.get_single_node()
        except yaml.YAMLError as exc:
            raise Invalid(f"not valid YAML: {yaml_problem(exc)}", field="nodes.conf") from None

    def mapping(self, node: yaml.Node, path: str) -> dict[str, yaml.Node]:
        """Key text -> value node; `<<` merge keys applied, a repeated key refused."""
        if not isinstance(node, yaml.MappingNode):
            raise Invalid(f"expected a mapping, got {_show(node)}", field=path)
        self._loader.flatten_mapping(node)
        out: dict[str, yaml.Node] = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                raise Invalid(f"a key must be a single value, got {_show(key)}", field=path)
            if key.value in out:
                raise Invalid(f"key {key.value!r} appears twice", field=f"{path}.{key.value}")
            out[key.value] = value
        return out

    def construct(self, node: yaml.Node) -> Any:
        return self._loader.construct_document(node)

    def dispose(self) -> None:
        self._loader.dispose()


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG


def _show(node: yaml.Node) -> str:
    if isinstance(node, yaml.ScalarNode):
        return repr(node.value)
    return "a list" if isinstance(node, yaml.SequenceNode) else "a mapping"


@cache
def _info(cls: type[msgspec.Struct]) -> mi.StructType:
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    return info


@cache
def _yaml_keys(cls: type[msgspec.Struct]) -> dict[str, str]:
    """Field name -> nodes.conf key."""
    return {name: extra.get("ww", name) for name, extra in field_extras(cls).items()}


def _old_keys(cls: type[msgspec.Struct]) -> dict[str, tuple[str, bool]]:
    """Keys of older Warewulf files: old key -> (field, whether it wins over the new key)."""
    if issubclass(cls, ProfileFields):
        return {"container name": ("image", False)}  # renamed `image name` in 4.6
    if cls is Kernel:
        # Before 4.6 `override` chose the kernel to boot and `version` only reported one;
        # 4.6 (and wolfpack) choose it with `version`, so an old `override` becomes `version`.
        return {"override": ("version", True)}
    return {}


def _unwrap(t: mi.Type) -> mi.Type:
    while isinstance(t, mi.Metadata):
        t = t.type
    if isinstance(t, mi.UnionType):  # the models' unions are all `X | None`
        (t,) = [u for u in t.types if not isinstance(u, mi.NoneType)]
        return _unwrap(t)
    return t


def _decode_struct(
    reader: _Reader, node: yaml.Node, info: mi.StructType, path: str, top: bool = False
) -> Any:
    cls = info.cls
    fields = {f.name: f for f in info.fields if not (top and f.name in _NOT_IN_FILE)}
    by_key = {_yaml_keys(cls)[name]: name for name in fields}
    old = _old_keys(cls)
    out: dict[str, Any] = {}
    old_values: list[tuple[str, bool, Any]] = []
    # `default:` with nothing under it (a null) is a struct with nothing set.
    entries = {} if _is_null(node) else reader.mapping(node, path)
    for key, value in entries.items():
        where = f"{path}.{key}"
        if key not in by_key and key not in old:
            raise Invalid(f"unknown key {key!r}", field=where)
        if _is_null(value):
            continue  # `key:` with nothing after it leaves the field unset
        if key in by_key:
            name = by_key[key]
            out[name] = _decode_field(reader, cls, name, value, fields[name].type, where)
        else:
            name, wins = old[key]
            old_values.append((name, wins, _decode(reader, value, fields[name].type, where)))
    for name, wins, decoded in old_values:
        if wins or name not in out:
            out[name] = decoded
    return cls(**out)


def _decode_field(
    reader: _Reader, cls: type, name: str, node: yaml.Node, t: mi.Type, path: str
) -> Any:
    if cls is Kernel and name == "args" and isinstance(node, yaml.ScalarNode):
        return node.value.split()  # older files: one string of arguments
    return _decode(reader, node, t, path)


def _decode(reader: _Reader, node: yaml.Node, t: mi.Type, path: str) -> Any:
    t = _unwrap(t)
    if isinstance(t, mi.AnyType):
        return reader.construct(node)
    if isinstance(t, mi.StructType):
        return _decode_struct(reader, node, t, path)
    if _is_null(node):  # a map entry or list item with nothing after it
        if isinstance(t, mi.StrType):
            return ""
        raise Invalid("missing value", field=path)
    if isinstance(t, mi.DictType):
        entries = reader.mapping(node, path)
        return {k: _decode(reader, v, t.value_type, f"{path}.{k}") for k, v in entries.items()}
    if isinstance(t, mi.ListType):
        if not isinstance(node, yaml.SequenceNode):
            raise Invalid(f"expected a list, got {_show(node)}", field=path)
        items = node.value
        return [_decode(reader, v, t.item_type, f"{path}[{i}]") for i, v in enumerate(items)]
    if not isinstance(node, yaml.ScalarNode):
        raise Invalid(f"expected a single value, got {_show(node)}", field=path)
    # Scalars are read from their text as written: a MAC of digits only, a version like
    # 1.10 or a tag `no` stays what the file says, whatever YAML 1.1 would make of it.
    text: str = node.value
    if isinstance(t, mi.BoolType):
        word = text.strip().lower()
        if word not in _TRUE and word not in _FALSE:
            raise Invalid(f"{text!r} is not a boolean (true/false)", field=path)
        return word in _TRUE
    if isinstance(t, mi.IntType):
        if not re.fullmatch(r"\s*[-+]?[0-9]+\s*", text):
            raise Invalid(f"{text!r} is not a whole number", field=path)
        return int(text)
    if isinstance(t, mi.StrType):
        return text
    raise Invalid(f"cannot read {text!r}: no rule for {t!r}", field=path)


def _encode(value: Any, t: mi.Type, top: bool = False) -> Any:
    t = _unwrap(t)
    if isinstance(t, mi.StructType):
        out: dict[str, Any] = {}
        for f in t.fields:
            v = getattr(value, f.name)
            if (top and f.name in _NOT_IN_FILE) or v is None or v == [] or v == {}:
                continue
            out[_yaml_keys(t.cls)[f.name]] = _encode(v, f.type)
        return out
    if isinstance(t, mi.DictType):
        return {k: _encode(v, t.value_type) for k, v in value.items()}
    if isinstance(t, mi.ListType):
        return [_encode(v, t.item_type) for v in value]
    if isinstance(t, mi.IntType):
        return str(value)  # Warewulf keeps numbers as strings
    return value
