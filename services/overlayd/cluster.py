"""What overlayd knows of the cluster: KV `nodes`, `profiles` and `images` mirrored in memory,
and every node merged with its profiles, re-merged only when the node or a profile changed.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

from libs.common.bus.mirror import Mirror, WatchedBucket, start_all
from libs.common.models.image import ImageMeta
from libs.common.models.node import Node, Profile
from libs.common.nodes.merge import merge_node
from services.overlayd.engine.plan import Change, nodes_with_profile


class ClusterView:
    def __init__(
        self,
        nodes: WatchedBucket[Node],
        profiles: WatchedBucket[Profile],
        images: WatchedBucket[ImageMeta],
    ) -> None:
        self.nodes = Mirror(nodes, self._node_changed)
        self.profiles = Mirror(profiles, self._profile_changed)
        self.images = Mirror(images, self._image_changed)
        self._merged: dict[str, Node] = {}
        # Overlay → how many merged nodes use it.
        self._users: Counter[str] = Counter()
        self._stale_nodes: set[str] = set()
        self._stale_profiles: set[str] = set()
        self._all_stale = True
        # Bumped on every change of nodes or profiles: the host configuration follows it.
        self.generation = 0
        # Told of every change the watches see. The watch, not the event, is what a render must
        # follow: a writer killed between its KV write and its event publishes nothing.
        self.on_change: Callable[[Change], None] | None = None

    async def start(self) -> None:
        await start_all(self.profiles, self.nodes, self.images)

    async def stop(self) -> None:
        await asyncio.gather(self.nodes.stop(), self.profiles.stop(), self.images.stop())

    def _node_changed(self, name: str, old: Node | None, new: Node | None) -> None:
        self._stale_nodes.add(name)
        self.generation += 1
        self._tell(Change(kind="node", name=name))

    def _profile_changed(self, name: str, old: Profile | None, new: Profile | None) -> None:
        self._stale_profiles.add(name)
        self.generation += 1
        self._tell(Change(kind="profile", name=name))

    def _image_changed(self, name: str, old: ImageMeta | None, new: ImageMeta | None) -> None:
        self._tell(Change(kind="image", name=name))

    def _tell(self, change: Change) -> None:
        if self.on_change is not None:
            self.on_change(change)

    def merged(self) -> dict[str, Node]:
        """Every node merged with its profiles (Warewulf's view), by name."""
        if self._all_stale:
            self._merged, self._users = {}, Counter()
            self._stale_nodes = set(self.nodes.items)
            self._stale_profiles.clear()
            self._all_stale = False
        if self._stale_profiles:
            for profile in self._stale_profiles:
                self._stale_nodes |= nodes_with_profile(
                    profile, self.nodes.items, self.profiles.items
                )
            self._stale_profiles.clear()
        if self._stale_nodes:
            for name in self._stale_nodes:
                self._count(self._merged.pop(name, None), -1)
                node = self.nodes.items.get(name)
                if node is not None:
                    self._merged[name] = merge_node(node, self.profiles.items).node
                    self._count(self._merged[name], 1)
            self._stale_nodes.clear()
        return self._merged

    def overlays_used(self) -> list[str]:
        """Every overlay some merged node uses (system or runtime)."""
        self.merged()
        return [name for name, users in self._users.items() if users > 0]

    def _count(self, node: Node | None, step: int) -> None:
        if node is not None:
            for overlay in {*node.system_overlay, *node.runtime_overlay}:
                self._users[overlay] += step

    def image_of(self, node: Node) -> ImageMeta | None:
        return self.images.items.get(node.image) if node.image else None
