"""Which stored objects reference which blobs: what `wolfpack gc` must keep and what
`wolfpack fsck` names for a corrupt blob, with the command that makes the blob again.

Pure: the objects come in (read from KV and the builder's chunk indexes elsewhere), digests
and referrers come out.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Literal

import msgspec

from libs.common.errors import Invalid
from libs.common.models.image import ImageMeta
from libs.common.models.overlay import BootManifest, OverlayMeta
from libs.common.store.cas import parse_digest

Kind = Literal["boot", "image", "overlay", "chunks"]


class Referrer(msgspec.Struct, frozen=True, kw_only=True):
    """One use of a blob: `kind` of object, its `name`, and the `role` the blob plays in it."""

    kind: Kind
    name: str
    role: str
    # The image a node's kernel or image blob came from.
    image: str | None = None

    def __str__(self) -> str:
        where = {
            "boot": "node",
            "image": "image",
            "overlay": "overlay",
            "chunks": "chunk index of image",
        }[self.kind]
        return f"{where} {self.name} ({self.role})"

    def remedy(self) -> str:
        """What makes the blob again once the corrupt one is out of the store."""
        if self.kind in ("image", "chunks") or self.role in ("kernel", "image"):
            image = self.name if self.kind != "boot" else (self.image or "<the node's image>")
            return f"wolfctl image build {image}"
        if self.kind == "boot":
            return f"wolfctl overlay build (renders {self.name} again)"
        path = self.role.removeprefix("file ")
        return f"wolfctl overlay import/edit {self.name} {path} (its content is lost)"


class References:
    """Digest → every referrer, filled from manifests, images, overlays and chunk indexes."""

    def __init__(self) -> None:
        self._by_digest: dict[str, list[Referrer]] = {}

    def __contains__(self, digest: object) -> bool:
        return digest in self._by_digest

    def __len__(self) -> int:
        return len(self._by_digest)

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_digest)

    def of(self, digest: str) -> list[Referrer]:
        return list(self._by_digest.get(digest, ()))

    def add(self, digest: str | None, referrer: Referrer) -> None:
        if not digest:
            return
        try:
            key = parse_digest(digest)
        except Invalid:
            key = digest  # names no blob the store can hold; kept to be reported as missing
        self._by_digest.setdefault(key, []).append(referrer)

    def add_manifest(self, manifest: BootManifest) -> None:
        """A node's boot manifest (KV `boot`): what bootd serves it."""

        def use(role: str, image: str | None = None) -> Referrer:
            return Referrer(kind="boot", name=manifest.node, role=role, image=image)

        self.add(manifest.kernel_digest, use("kernel", manifest.image))
        self.add(manifest.image_digest, use("image", manifest.image))
        for number, digest in enumerate(manifest.system_digests):
            self.add(digest, use(f"system overlay archive {number + 1}"))
        self.add(manifest.runtime_digest, use("runtime overlay archive"))

    def add_image(self, image: ImageMeta) -> None:
        """An image as last built (KV `images`): what the next render puts in manifests."""
        self.add(image.kernel_digest, Referrer(kind="image", name=image.name, role="kernel"))
        self.add(image.image_digest, Referrer(kind="image", name=image.name, role="image"))

    def add_overlay(self, overlay: OverlayMeta) -> None:
        """A site overlay (KV `overlays`): each file's content."""
        for path, entry in sorted(overlay.files.items()):
            self.add(entry.digest, Referrer(kind="overlay", name=overlay.name, role=f"file {path}"))

    def add_chunk_index(self, image: str, digests: Iterable[str]) -> None:
        """A chunk index of the builder (its chunks and the image they made): the next build
        reuses every blob it lists without storing it again."""
        for digest in digests:
            self.add(digest, Referrer(kind="chunks", name=image, role="chunk"))
