"""Request and response bodies of the registry API that are not stored objects themselves."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from libs.common.models.fields import meta
from libs.common.models.node import Node, Profile


class BulkAdd(Node, kw_only=True):
    """`POST /nodes:bulk`: a node template applied to every name of a hostlist range.

    `ipaddr` (and `ipmiaddr`) are the first addresses; each further node gets the next one.
    """

    names: Annotated[str, meta("hostlist range, e.g. n[001-100]")]
    netname: Annotated[str, meta("network device that gets ipaddr", flag="netname")] = "default"
    ipaddr: Annotated[str | None, meta("first IPv4/IPv6 address, counted up per node")] = None
    ipmiaddr: Annotated[str | None, meta("first IPMI address, counted up per node")] = None


class BulkResult(msgspec.Struct, kw_only=True):
    created: list[str]
    revisions: dict[str, int]


class MergedNode(msgspec.Struct, kw_only=True):
    """A node's effective settings and, per dotted field path, the source of each value.

    Provenance values are a source name (a profile name, or the node's own name) for scalars
    and a list of source names, one per element, for lists.
    """

    node: Node
    provenance: dict[str, Any]


class MergedProfile(msgspec.Struct, kw_only=True):
    profile: Profile
    provenance: dict[str, Any]


class ImportResult(msgspec.Struct, kw_only=True):
    profiles: list[str]
    nodes: list[str]


class ErrorBody(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Every 4xx/5xx body: what went wrong and, where known, which field."""

    error: str
    field: str | None = None
