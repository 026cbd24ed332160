"""Discovery over NATS request-reply (`subjects.DISCOVERY`): bootd asks the registry to give
an unknown MAC to a discoverable node, as bootd saw that node; the registry answers which node
now has it, or why not."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from libs.common.models.fields import meta

# Which part of a claim the registry refused (DiscoveryAnswer.refused).
Refusal = Literal["node", "mac", "request"]


class DiscoveryClaim(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """bootd's request: give `mac` to `node` if the node is still at `revision` and marked
    discoverable (compare-and-set: a node changed or claimed since bootd looked is refused)."""

    node: Annotated[str, meta("the discoverable node bootd chose")]
    revision: Annotated[int, msgspec.Meta(ge=1, description="the node's revision as bootd saw it")]
    mac: Annotated[str, meta("the unknown MAC that asked to boot")]


class DiscoveryAnswer(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The registry's reply: the node that now has the MAC, or `refused` and why."""

    node: Annotated[str | None, meta("the node now owning the MAC; unset when refused")] = None
    revision: Annotated[int | None, meta("that node's revision after the claim")] = None
    refused: Annotated[
        Refusal | None,
        meta(
            "what was refused: `node` (changed, claimed, deleted or no longer discoverable "
            "since bootd looked: another node may take the MAC), `mac` (it already belongs to "
            "a node: no other node will take it), `request` (malformed, `field` says where, or "
            "the registry failed on it); nothing was changed"
        ),
    ] = None
    error: Annotated[str, meta("why it was refused, in words a person can act on")] = ""
    field: Annotated[str | None, meta("the part of the request that was wrong")] = None
