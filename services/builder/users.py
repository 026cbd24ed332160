"""Who uses an image: the nodes that boot it (merged with their profiles, as the registry
shows them) and the profiles that name it. An image in use is not deleted, as Warewulf's
`wwctl image delete` refuses it; the API's `?force=true` deletes it anyway."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Protocol, TypeVar

import hostlist
import msgspec

from libs.common.errors import Conflict
from libs.common.models.node import Node, Profile
from libs.common.nodes.merge import merge_node

T_co = TypeVar("T_co", bound=msgspec.Struct, covariant=True)

SHOWN: Final = 200  # characters of node names in the message, at most


class Items(Protocol[T_co]):
    """The part of libs.common.bus.kv.Bucket the check needs: every current value."""

    async def items(self) -> Mapping[str, T_co]: ...


class ImageUsers:
    def __init__(self, nodes: Items[Node], profiles: Items[Profile]) -> None:
        self._nodes = nodes
        self._profiles = profiles

    async def of(self, image: str) -> tuple[list[str], list[str]]:
        """(nodes, profiles) using `image`, each sorted by name."""
        profiles = dict(await self._profiles.items())
        nodes = await self._nodes.items()
        booting = [
            name for name, node in nodes.items() if merge_node(node, profiles).node.image == image
        ]
        naming = [name for name, profile in profiles.items() if profile.image == image]
        return sorted(booting), sorted(naming)

    async def refuse_if_used(self, image: str) -> None:
        """Conflict naming the users of `image`, if it has any."""
        nodes, profiles = await self.of(image)
        if not nodes and not profiles:
            return
        users = []
        if nodes:
            shown = hostlist.collect_hostlist(nodes)
            if len(shown) > SHOWN:
                shown = shown[:SHOWN].rsplit(",", 1)[0] + ",..."
            users.append(f"{_count(len(nodes), 'node')} ({shown})")
        if profiles:
            users.append(f"{_count(len(profiles), 'profile')} ({', '.join(profiles)})")
        raise Conflict(
            f"image {image!r} is in use by {' and '.join(users)}; point them at another image "
            "first (`wolfctl node set --image`, `wolfctl profile set --image`), or delete it "
            "anyway with ?force=true",
            field="name",
        )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
