"""Discovery: an unknown MAC is given to the first discoverable node, through the registry's
HTTP API (so its rules and its event apply), with If-Match so two claims cannot both win."""

from __future__ import annotations

import logging
import ssl
from typing import Final

import httpx

from libs.common.models.node import Node
from libs.common.security.accepted_tokens import TokenFile

log = logging.getLogger("wolfpack.bootd.discovery")

DEFAULT_DEVICE: Final = "default"


def claim_patch(node: Node, mac: str) -> dict[str, object]:
    """The merge patch that gives `node` the MAC and clears its discoverable flag."""
    device = node.primary_network or DEFAULT_DEVICE
    return {"network_devices": {device: {"hwaddr": mac}}, "discoverable": None}


class Discovery:
    """Claims nodes for unknown MACs through the registry at `url`, with the current token
    (read again after `wolfpack token rotate`); `verify` trusts the registry's certificate."""

    def __init__(self, url: str, tokens: TokenFile, verify: ssl.SSLContext | bool = True) -> None:
        self._url = url.rstrip("/")
        self._tokens = tokens
        self._verify = verify
        self._client: httpx.AsyncClient | None = None
        # MACs claimed by this process, so a node retrying its script does not claim twice
        # before the manifest arrives.
        self.claimed: dict[str, str] = {}

    async def claim(self, node: Node, mac: str) -> bool:
        """True if `node` now has `mac`; False if someone changed it first (or it failed)."""
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=10, verify=self._verify)
        try:
            answer = await self._client.patch(
                f"{self._url}/api/v1/nodes/{node.name}",
                json=claim_patch(node, mac),
                headers={
                    "Authorization": f"Bearer {self._tokens.current()}",
                    "If-Match": str(node.revision),
                    "Content-Type": "application/merge-patch+json",
                },
            )
        except httpx.HTTPError as err:
            log.warning("discovery: cannot reach the registry at %s: %s", self._url, err)
            return False
        if answer.status_code >= 400:
            log.warning(
                "discovery: registry refused %s for %s: %d %s",
                mac,
                node.name,
                answer.status_code,
                answer.text[:200],
            )
            return False
        self.claimed[mac] = node.name
        log.info("discovery: MAC %s given to node %s", mac, node.name)
        return True

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
