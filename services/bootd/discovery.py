"""Discovery: an unknown MAC is given to the first discoverable node (by name), as Warewulf
does. bootd asks the registry over NATS (subjects.DISCOVERY) to give it the node as bootd
saw it; the registry writes it only at that revision, so two claims cannot both win, and a
node changed or taken meanwhile is refused: bootd then asks for the next one."""

from __future__ import annotations

import logging
from typing import Final

from libs.common import subjects
from libs.common.bus import rpc
from libs.common.bus.connection import Bus
from libs.common.models.discovery import DiscoveryAnswer, DiscoveryClaim
from services.bootd.index import ManifestIndex

log = logging.getLogger("wolfpack.bootd.discovery")

# Seconds to wait for the registry's answer; the node waits as long for its script.
ASK_TIMEOUT: Final = 5.0


class Discovery:
    """Claims nodes for unknown MACs from the discoverable nodes of `index`."""

    def __init__(self, bus: Bus, index: ManifestIndex, timeout: float = ASK_TIMEOUT) -> None:
        self._bus = bus
        self._index = index
        self._timeout = timeout
        # MACs claimed by this process, so a node retrying its script does not claim twice
        # before the manifest arrives.
        self.claimed: dict[str, str] = {}

    async def discover(self, mac: str) -> str | None:
        """The node that has `mac` now: claimed earlier, or the first discoverable node the
        registry gives it to. None if no node is left, the registry refuses the MAC, or it
        does not answer (the node's script retries)."""
        known = self.claimed.get(mac)
        if known is not None:
            return known
        tried: set[str] = set()
        while (node := self._index.first_discoverable(skip=tried)) is not None:
            tried.add(node.name)
            claim = DiscoveryClaim(node=node.name, revision=node.revision, mac=mac)
            answer = await self._ask(claim)
            if answer is None:
                return None
            if answer.node is not None:
                self.claimed[mac] = answer.node
                self._index.set_node(answer.node, None)  # taken: the registry's event follows
                log.info("discovery: MAC %s given to node %s", mac, answer.node)
                return answer.node
            if answer.refused != "node":
                log.warning("discovery: the registry refused MAC %s: %s", mac, answer.error)
                return None
            log.info("discovery: %s; trying the next discoverable node", answer.error)
        return None

    async def _ask(self, claim: DiscoveryClaim) -> DiscoveryAnswer | None:
        try:
            return await rpc.request(
                self._bus, subjects.DISCOVERY, claim, DiscoveryAnswer, within=self._timeout
            )
        except rpc.NoAnswer as err:
            log.warning("discovery: no answer from the registry for MAC %s: %s", claim.mac, err)
            return None
