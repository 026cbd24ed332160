"""Who may fetch what: the asset key a node must present, the runtime overlay's rules (the
owning node only, with its asset key, from a privileged source port in secure mode), and a
node's own overlay archives asked for at `/blobs` (services.bootd.boot.BootServer.blob_owner
has the allow-list)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from libs.common.errors import Forbidden, Unauthorized
from libs.common.models.overlay import BootManifest
from libs.common.security.api_token import tokens_equal
from services.bootd.index import bare

PRIVILEGED_BELOW: Final = 1024

__all__ = ["PRIVILEGED_BELOW", "Forbidden", "check_asset_key", "check_own_archive", "check_runtime"]

# Is this the asset key of some node? (ManifestIndex.known_key)
KnownKey = Callable[[str], bool]


def _nobody(key: str) -> bool:
    return False


def check_asset_key(
    manifest: BootManifest, given: str | None, known_key: KnownKey = _nobody
) -> None:
    """A node with an asset key must send it (`?assetkey=`): 401 without it or with a key no
    node has; 403 with another node's key, whether or not this node has one."""
    if given is not None and (
        manifest.asset_key is None or not tokens_equal(given, manifest.asset_key)
    ):
        if known_key(given):
            raise Forbidden(
                f"the asset key sent is another node's: it opens nothing of node {manifest.node}",
                field="assetkey",
            )
        if manifest.asset_key is not None:
            raise Unauthorized(f"wrong asset key for node {manifest.node}", field="assetkey")
    if manifest.asset_key is not None and given is None:
        raise Unauthorized(
            f"node {manifest.node} needs its asset key (?assetkey=)", field="assetkey"
        )


def check_runtime(
    manifest: BootManifest | None,
    mac: str,
    assetkey: str | None,
    port: int | None,
    secure: bool,
    known_key: KnownKey = _nobody,
) -> BootManifest:
    """The manifest whose runtime overlay `mac` may fetch, or the refusal."""
    if manifest is None:
        raise Forbidden(f"no node owns MAC {mac}: no runtime overlay for it", field="mac")
    check_asset_key(manifest, assetkey, known_key)
    if secure and (port is None or port >= PRIVILEGED_BELOW):
        raise Forbidden(
            f"secure mode: the runtime overlay of {manifest.node} is only sent to a privileged "
            f"source port (< {PRIVILEGED_BELOW}, root on the node), not {port}",
            field="port",
        )
    return manifest


def check_own_archive(
    manifest: BootManifest, digest: str, assetkey: str | None, known_key: KnownKey = _nobody
) -> None:
    """`/blobs/sha256/<digest>` of an overlay archive that the current manifest of the node
    asked as (`?wwid=`) lists (it holds the node's secrets: its asset key, host keys): the
    node's asset key decides, and a runtime archive is refused even then (only
    `/runtime/<mac>` sends it, with its own rules)."""
    check_asset_key(manifest, assetkey, known_key)
    if digest == bare(manifest.runtime_digest or ""):
        raise Forbidden(
            f"blob {digest} is the runtime overlay of {manifest.node}: it is sent at "
            "/runtime/<mac> only",
            field="digest",
        )
