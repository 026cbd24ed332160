"""The template context: what `node`, `nodes`, `settings`, `image`, `keys`... hold, built
cheaply. A node's view (a plain dict of its merged settings) is built once and kept until
the node changes, so a wave over 10,000 nodes converts only the nodes that changed, and
`nodes` is the same list of the same dicts for every template of the wave.

Each input also gets a fingerprint (a short hash) so the renderer can tell, without rendering,
whether anything an overlay reads has changed since it was last rendered.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from libs.common.models.node import Node
from libs.common.models.site import TemplateSettings

View = dict[str, Any]
_encoder = msgspec.json.Encoder(order="deterministic")


def fingerprint(*parts: bytes) -> bytes:
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        digest.update(len(part).to_bytes(4, "little"))
        digest.update(part)
    return digest.digest()


def fingerprint_of(value: Any) -> bytes:
    return fingerprint(_encoder.encode(value))


# -- node views ---------------------------------------------------------------------------------


def node_view(node: Node) -> View:
    """`node` in templates: the merged node as msgspec.to_builtins gives it (unset fields are
    absent: templates test them with `.get()` or `is defined`), with its `name`, network
    devices in name order (so every rendering lists them alike), no store revision."""
    view: View = msgspec.to_builtins(node)
    view.pop("revision", None)
    view["name"] = node.name
    devices = view.get("network_devices")
    if devices:
        view["network_devices"] = dict(sorted(devices.items()))
    return view


def node_fingerprint(node: Node) -> bytes:
    # The store revision is not content: re-saving an unchanged node changes nothing.
    return fingerprint_of(msgspec.structs.replace(node, revision=0))


class _Cached(msgspec.Struct):
    node: Node
    view: View
    fingerprint: bytes


class NodeViews:
    """Views of the merged nodes, kept across waves; rebuilt only for nodes that changed."""

    def __init__(self) -> None:
        self._cache: dict[str, _Cached] = {}
        self._all: list[View] | None = None
        self._all_fingerprint: bytes | None = None

    def get(self, node: Node) -> tuple[View, bytes]:
        cached = self._cache.get(node.name)
        if cached is None or (cached.node is not node and cached.node != node):
            cached = _Cached(node, node_view(node), node_fingerprint(node))
            self._cache[node.name] = cached
            self._all = self._all_fingerprint = None
        return cached.view, cached.fingerprint

    def update(self, nodes: Iterable[Node]) -> list[str]:
        """Make the set of all nodes exactly `nodes` (the `nodes` of the next wave); returns
        the names of the nodes that are gone."""
        present: set[str] = set()
        for node in nodes:
            self.get(node)
            present.add(node.name)
        gone = [name for name in self._cache if name not in present]
        for name in gone:
            del self._cache[name]
        if gone:
            self._all = self._all_fingerprint = None
        return gone

    def all(self) -> list[View]:
        """Every view, sorted by node name; the same list until a node changes."""
        if self._all is None:
            self._all = [self._cache[name].view for name in sorted(self._cache)]
        return self._all

    def all_fingerprint(self) -> bytes:
        if self._all_fingerprint is None:
            parts = [name.encode() + self._cache[name].fingerprint for name in sorted(self._cache)]
            self._all_fingerprint = fingerprint(*parts)
        return self._all_fingerprint


# -- the rest of the context --------------------------------------------------------------------


def image_views(images: Mapping[str, Any]) -> dict[str, tuple[View, bytes]]:
    """`image` in templates, by image name: the KV `images` metadata as a plain dict."""
    found: dict[str, tuple[View, bytes]] = {}
    for name, meta in images.items():
        view = msgspec.to_builtins(meta) if isinstance(meta, msgspec.Struct) else dict(meta)
        view.pop("revision", None)
        found[name] = (view, fingerprint_of(view))
    return found


def settings_view(settings: TemplateSettings) -> View:
    view: View = msgspec.to_builtins(settings)
    return view
