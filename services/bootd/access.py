"""Who may fetch what: the asset key a node must present, and the runtime overlay's rules
(the owning node only, with its asset key, from a privileged source port in secure mode)."""

from __future__ import annotations

from typing import Final

from libs.common.errors import Unauthorized, WolfpackError
from libs.common.models.overlay import BootManifest
from libs.common.token import tokens_equal

PRIVILEGED_BELOW: Final = 1024


class Forbidden(WolfpackError):
    """The request is understood and refused (HTTP 403)."""


def check_asset_key(manifest: BootManifest, given: str | None) -> None:
    """A node with an asset key must send it (`?assetkey=`); 401 otherwise."""
    if manifest.asset_key is None:
        return
    if given is None:
        raise Unauthorized(
            f"node {manifest.node} needs its asset key (?assetkey=)", field="assetkey"
        )
    if not tokens_equal(given, manifest.asset_key):
        raise Unauthorized(f"wrong asset key for node {manifest.node}", field="assetkey")


def check_runtime(
    manifest: BootManifest | None, mac: str, assetkey: str | None, port: int | None, secure: bool
) -> BootManifest:
    """The manifest whose runtime overlay `mac` may fetch, or the refusal."""
    if manifest is None:
        raise Forbidden(f"no node owns MAC {mac}: no runtime overlay for it", field="mac")
    check_asset_key(manifest, assetkey)
    if secure and (port is None or port >= PRIVILEGED_BELOW):
        raise Forbidden(
            f"secure mode: the runtime overlay of {manifest.node} is only sent to a privileged "
            f"source port (< {PRIVILEGED_BELOW}, root on the node), not {port}",
            field="port",
        )
    return manifest
