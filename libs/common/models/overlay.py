"""Overlays as stored (KV `overlays` + the CAS), the boot manifest (KV `boot`) and the events
overlayd publishes. Digests are the store's: 64 lowercase hex digits of a sha256.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from libs.common.models.events import now
from libs.common.models.fields import meta

FileKind = Literal["file", "dir", "symlink"]


class OverlayFile(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """One entry of a site overlay. A file's content is the blob `digest`; a template is a file
    whose path ends in `.j2`. `mode` is the permission bits only (0o644), without the type."""

    kind: Annotated[FileKind, meta("file, dir or symlink")]
    mode: Annotated[int, meta("permission bits, e.g. 420 (0o644)")] = 0o644
    uid: Annotated[int, meta("owner uid on the node")] = 0
    gid: Annotated[int, meta("owner gid on the node")] = 0
    digest: Annotated[str | None, meta("content blob (files)")] = None
    target: Annotated[str | None, meta("link target (symlinks)")] = None
    size: Annotated[int, meta("content size in bytes (files)")] = 0


class OverlayMeta(msgspec.Struct, kw_only=True, frozen=True):
    """A site overlay in KV `overlays` (key = name): every entry by its path inside the
    overlay (relative, no leading slash). It shadows a shipped overlay of the same name."""

    name: Annotated[str, meta("overlay name")]
    files: Annotated[dict[str, OverlayFile], meta("entries by path")] = msgspec.field(
        default_factory=dict
    )
    cloned_from: Annotated[str | None, meta("the shipped overlay it started as a copy of")] = None
    revision: Annotated[int, meta("store revision; send it back in If-Match")] = 0


class OverlayEvent(msgspec.Struct, kw_only=True, omit_defaults=True):
    """`wolfpack.overlay.<name>.updated|deleted`: a site overlay changed in KV `overlays`.
    `paths` names the entries that changed (empty for a whole-overlay change)."""

    name: str
    action: Literal["updated", "deleted"]
    revision: int
    paths: list[str] = msgspec.field(default_factory=list)
    at: float = msgspec.field(default_factory=now)


class BootManifest(msgspec.Struct, kw_only=True, frozen=True):
    """KV `boot`, key = node name: everything bootd needs to boot the node (DESIGN.md)."""

    node: str
    hwaddrs: list[str] = msgspec.field(default_factory=list)
    asset_key: str | None = None
    image: str | None = None
    kernel_digest: str | None = None
    image_digest: str | None = None
    # The node's system overlays in at most two archives, unpacked in this order: the files
    # every node with the same overlays shares (one blob for all of them), then the node's own.
    system_digests: list[str] = msgspec.field(default_factory=list)
    # One archive combining the node's runtime overlays.
    runtime_digest: str | None = None
    kernel_args: list[str] = msgspec.field(default_factory=list)
    ipxe_template: str | None = None
    revision: int = 0


class RenderedEvent(msgspec.Struct, kw_only=True, omit_defaults=True):
    """`wolfpack.node.<name>.rendered`: the node's manifest was written with new content.
    `changed` names the manifest fields that differ from the previous manifest; `overlays` the
    system overlays whose archive changed."""

    node: str
    revision: int
    changed: list[str] = msgspec.field(default_factory=list)
    overlays: list[str] = msgspec.field(default_factory=list)
    system_digests: list[str] = msgspec.field(default_factory=list)
    runtime_digest: str | None = None
    at: float = msgspec.field(default_factory=now)


class ManifestDeleted(msgspec.Struct, kw_only=True, omit_defaults=True):
    """`wolfpack.node.<name>.unrendered`: the node's manifest left KV `boot` (the node is
    gone); bootd no longer boots it. `revision` is the delete's own."""

    node: str
    revision: int
    at: float = msgspec.field(default_factory=now)


class RenderFailedEvent(msgspec.Struct, kw_only=True, omit_defaults=True):
    """`wolfpack.node.<name>.render_failed`: a template failed for this node; its last good
    manifest stays. `template` and `line` are None when the failure is not in a template
    (a missing overlay, say)."""

    node: str
    overlay: str
    message: str
    template: str | None = None
    line: int | None = None
    at: float = msgspec.field(default_factory=now)
