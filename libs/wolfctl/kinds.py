"""Nodes and profiles as the CLI sees them: the model, its API collection, its merged view."""

from __future__ import annotations

from types import GenericAlias
from typing import Any, Generic, TypeVar

import click
import hostlist
import msgspec

from libs.common.apiclient.client import Registry
from libs.common.models.api import MergedNode, MergedProfile
from libs.common.models.node import Node, Profile

M = TypeVar("M", Node, Profile)


class Kind(msgspec.Struct, Generic[M], frozen=True, kw_only=True):
    noun: str  # "node"
    collection: str  # "nodes": the API path
    model: type[M]
    merged: type[msgspec.Struct]  # MergedNode: {node, provenance}

    def path(self, name: str | None = None) -> str:
        return f"/{self.collection}" if name is None else f"/{self.collection}/{name}"

    def count(self, n: int) -> str:
        return f"{n} {self.noun}" + ("" if n == 1 else "s")


NODE: Kind[Node] = Kind(noun="node", collection="nodes", model=Node, merged=MergedNode)
PROFILE: Kind[Profile] = Kind(
    noun="profile", collection="profiles", model=Profile, merged=MergedProfile
)


def expand_names(patterns: tuple[str, ...] | list[str]) -> list[str]:
    """Hostlist ranges (`n[01-20],login1`) to names, in order, each once."""
    names: list[str] = []
    for pattern in patterns:
        try:
            names.extend(hostlist.expand_hostlist(pattern))
        except hostlist.BadHostlist as e:
            raise click.BadParameter(f"{pattern!r}: {e}", param_hint="NAMES") from None
    return list(dict.fromkeys(names))


def name_of(kind: Kind[Any], obj: Any) -> str:
    """The name of a stored object or of a merged view (`MergedNode.node.name`)."""
    return getattr(obj, kind.noun).name if isinstance(obj, kind.merged) else obj.name


async def list_objects(
    api: Registry,
    kind: Kind[M],
    *,
    merged: bool = False,
    names: list[str] | None = None,
    secrets: bool = False,
) -> list[Any]:
    """Every object (or merged view) of a kind, sorted by name; only `names` if given.
    Secrets come masked unless `secrets` (which the registry allows with the token only)."""
    params = {"merged": "true"} if merged else {}
    if secrets:
        params["secrets"] = "true"
    if names:
        # The registry may filter by range itself; filtering here as well keeps us honest.
        params["names"] = hostlist.collect_hostlist(names)
    list_type: Any = GenericAlias(list, (kind.merged if merged else kind.model,))
    objects: list[Any] = await api.get(kind.path(), list_type, params)
    if names:
        wanted = set(names)
        objects = [o for o in objects if name_of(kind, o) in wanted]
    objects.sort(key=lambda o: name_of(kind, o))
    return objects


async def patch_object(api: Registry, kind: Kind[M], name: str, patch: dict[str, Any]) -> M:
    return await api.send("PATCH", kind.path(name), patch, kind.model)


async def delete_object(api: Registry, kind: Kind[M], name: str) -> None:
    await api.delete(kind.path(name))
