"""The template language: a sandboxed Jinja2 environment per overlay tree, its filters, and
the analysis of which context variables an overlay's templates read.

The sandbox (sandbox.py) is Jinja2's immutable one. Includes resolve inside the overlay's own
tree only, from memory: `..`, symlinks and directories are refused.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any, Final

from jinja2 import BaseLoader, Environment, StrictUndefined, TemplateError, TemplateNotFound, meta
from jinja2.nodes import Template as TemplateAst

from libs.common.errors import Invalid
from services.overlayd.engine.paths import overlay_path
from services.overlayd.engine.sandbox import OverlayEnvironment, bounded_filters
from services.overlayd.engine.sources import OverlayTree

# Template file names in tracebacks: how a template frame is told from a Python one.
FILENAME_PREFIX: Final = "<overlay>/"

# What an overlay can read, by how it varies: per node, per wave, or on every wave.
NODE_VARIABLES: Final = frozenset({"node", "image", "include_image"})
WAVE_VARIABLES: Final = frozenset(
    {"nodes", "settings", "keys", "authorized_keys", "build_time", "overlay"}
)
VOLATILE_VARIABLES: Final = frozenset({"include_host"})  # host files: re-read every wave
CONTEXT_VARIABLES: Final = NODE_VARIABLES | WAVE_VARIABLES | VOLATILE_VARIABLES


class IncludeRefused(TemplateError):
    """An include named something outside the overlay, or not a file in it."""


def template_filename(path: str) -> str:
    return FILENAME_PREFIX + path


class TreeLoader(BaseLoader):
    """Templates from an overlay tree in memory; names are paths from the overlay's root."""

    def __init__(self, tree: OverlayTree) -> None:
        self.tree = tree

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        try:
            path = overlay_path(template, what="include")
        except Invalid as err:
            raise IncludeRefused(err.message) from None
        entry = self.tree.entries.get(path)
        if entry is None:
            raise TemplateNotFound(template, f"include {template!r}: no such file in the overlay")
        if entry.kind != "file":
            raise IncludeRefused(f"include {template!r}: a {entry.kind}, not a file; refused")
        try:
            source = entry.data.decode()
        except UnicodeDecodeError:
            raise IncludeRefused(f"include {template!r}: not UTF-8 text") from None
        return source, template_filename(path), _always_current


def _always_current() -> bool:
    return True  # a tree never changes: a new revision gets a new environment


def _finalize(value: Any) -> Any:
    # An unset field prints as nothing, not "None", as Warewulf's templates expect.
    return "" if value is None else value


def make_environment(tree: OverlayTree) -> OverlayEnvironment:
    env = OverlayEnvironment(
        loader=TreeLoader(tree),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        auto_reload=False,
        cache_size=-1,
        finalize=_finalize,
    )
    bounded_filters(env.filters)
    env.filters.update(ipv4_network=ipv4_network, prefixlen=prefixlen, netmask_of=netmask_of)
    return env


# -- filters ----------------------------------------------------------------------------------


def ipv4_network(ip: str, netmask: str | int | None = None) -> str:
    """`{{ "10.0.3.7" | ipv4_network("255.255.0.0") }}` → `10.0.0.0` (also `"10.0.3.7/16"`)."""
    text = f"{ip}/{netmask}" if netmask is not None else str(ip)
    try:
        return str(ipaddress.IPv4Network(text, strict=False).network_address)
    except ValueError as err:
        raise ValueError(
            f"ipv4_network: {text!r} is not an IPv4 address and netmask: {err}"
        ) from None


def prefixlen(netmask: str) -> int:
    """`{{ "255.255.252.0" | prefixlen }}` → 22."""
    try:
        return ipaddress.IPv4Network(f"0.0.0.0/{netmask}").prefixlen
    except ValueError as err:
        raise ValueError(f"prefixlen: {netmask!r} is not an IPv4 netmask: {err}") from None


def netmask_of(length: int | str) -> str:
    """`{{ 22 | netmask_of }}` → `255.255.252.0`."""
    try:
        return str(ipaddress.IPv4Network(f"0.0.0.0/{int(length)}").netmask)
    except ValueError as err:
        raise ValueError(f"netmask_of: {length!r} is not a prefix length (0-32): {err}") from None


# -- analysis -----------------------------------------------------------------------------------


def variables_read(env: Environment, roots: list[str]) -> frozenset[str]:
    """The context variables the templates `roots` (and what they include) read.

    A dynamic include (a name computed at render time) could read anything: every variable.
    Templates that fail to parse read nothing: they fail the same way for every node.
    """
    found: set[str] = set()
    seen: set[str] = set()
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            source = env.loader.get_source(env, name)[0] if env.loader else ""
            ast: TemplateAst = env.parse(source, name=name)
        except TemplateError:
            continue
        found |= meta.find_undeclared_variables(ast) & CONTEXT_VARIABLES
        for included in meta.find_referenced_templates(ast):
            if included is None:
                return CONTEXT_VARIABLES
            pending.append(included)
    return frozenset(found)
