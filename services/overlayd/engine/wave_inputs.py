"""One wave: the inputs shared by every node rendered together, and how each overlay's
render for a node is fingerprinted.

The fingerprint of (overlay, node) hashes the overlay's revision and exactly the inputs its
templates read: the node's view only if it reads `node`, the node's image only if it reads
`image` or calls include_image, the view of every node only if it reads `nodes`, and so on.
Equal fingerprints mean equal output, so an overlay that reads nothing per node renders once
per wave for all nodes, and one whose inputs did not change since the last wave does not
render at all. include_host reads host files, which nothing announces: overlays calling it
render again (once) every wave.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from libs.common.formats.newc import Member
from libs.common.models.node import Node
from libs.common.models.site import TemplateSettings
from services.overlayd.engine.archive import Pending
from services.overlayd.engine.compiled_overlay import CompiledOverlay
from services.overlayd.engine.context import (
    NodeViews,
    View,
    fingerprint,
    fingerprint_of,
    image_views,
    settings_view,
)
from services.overlayd.engine.errors import RenderError
from services.overlayd.engine.helpers import HostFiles, ImageFiles

Result = str | RenderError  # a blob digest, or why there is none
_NO_IMAGE = b"\0no image"


class Wave:
    def __init__(
        self,
        *,
        views: NodeViews,
        overlays: Mapping[str, CompiledOverlay | RenderError],
        settings: TemplateSettings,
        keys: dict[str, dict[str, str]],
        authorized_keys: list[str],
        images: Mapping[str, Any],
        build_time: str,
        host_files: HostFiles,
        image_files: ImageFiles,
    ) -> None:
        self.id = os.urandom(16)
        self.views = views
        self.overlays = overlays
        self.build_time = build_time
        self.settings = settings_view(settings)
        self.keys = keys
        self.authorized_keys = authorized_keys
        self.images = image_views(images)
        self.host_files = host_files
        self.image_files = image_files
        self._wave_parts: dict[str, bytes] = {}
        # Results of this wave, kept apart until its blobs are stored (then committed).
        self.memo: dict[bytes, Result] = {}
        self.last: dict[tuple[str, str], tuple[bytes, str]] = {}
        self._paths: dict[bytes, tuple[bytes, frozenset[str]]] = {}
        self.members: dict[bytes, tuple[str, list[Member]]] = {}
        self.blobs: list[bytes] = []
        self.packed: Pending = {}

    # -- fingerprints --

    def fingerprint(self, overlay: CompiledOverlay, node: Node, node_fp: bytes) -> bytes:
        base = self._wave_part(overlay)
        reads = overlay.reads
        if not overlay.per_node:
            return base
        parts = [base]
        if "node" in reads:
            parts.append(node_fp)
        if "image" in reads or "include_image" in reads:
            parts.append(self._image_fp(node.image))
        return fingerprint(*parts)

    def _wave_part(self, overlay: CompiledOverlay) -> bytes:
        found = self._wave_parts.get(overlay.tree.revision)
        if found is None:
            reads = overlay.reads
            parts = [overlay.tree.revision.encode()]
            if "nodes" in reads:
                parts.append(self.views.all_fingerprint())
            if "settings" in reads:
                parts.append(fingerprint_of(self.settings))
            if "keys" in reads:
                parts.append(fingerprint_of(self.keys))
            if "authorized_keys" in reads:
                parts.append(fingerprint_of(self.authorized_keys))
            if "build_time" in reads:
                parts.append(self.build_time.encode())
            if overlay.volatile:
                parts.append(self.id)
            found = self._wave_parts[overlay.tree.revision] = fingerprint(*parts)
        return found

    def _image_fp(self, image: str | None) -> bytes:
        if not image:
            return _NO_IMAGE
        found = self.images.get(image)
        return found[1] if found else fingerprint(b"\0unknown image", image.encode())

    def paths_of(self, fp: bytes, members: list[Member]) -> tuple[bytes, frozenset[str]]:
        """The paths of an overlay's render `fp`, and their fingerprint (computed once)."""
        found = self._paths.get(fp)
        if found is None:
            paths = frozenset(m.path for m in members)
            found = self._paths[fp] = (fingerprint(*sorted(p.encode() for p in paths)), paths)
        return found

    # -- the context --

    def context(self, overlay: CompiledOverlay, node: Node, view: View) -> dict[str, Any]:
        image = self.images.get(node.image or "")
        read_image = self.image_files.read
        image_name = node.image

        # A closure, not functools.partial: a partial's public `.func` would hand templates
        # the reader itself, able to read other images.
        def include_image(path: str, default: str | None = None) -> str:
            return read_image(image_name, path, default)

        return {
            "node": view,
            "nodes": self.views.all(),
            "settings": self.settings,
            "image": image[0] if image else None,
            "build_time": self.build_time,
            "overlay": overlay.name,
            "keys": self.keys,
            "authorized_keys": self.authorized_keys,
            "include_host": self.host_files.read,
            "include_image": include_image,
        }
