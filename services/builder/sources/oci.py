"""Reading an OCI image layout: index.json → (image index → the wanted platform) → manifest →
config → layers, every blob checked against its descriptor's sha256 and size.

Written here (not umoci) so each bad layout gets a clear error naming the blob, and so a
layout is read without trusting it: blob paths come only from validated digests, blobs are
opened without following symlinks, and JSON documents are read with a size cap.
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import msgspec

from libs.common.errors import Invalid, NotFound
from libs.common.store.cas import parse_digest
from services.builder.sources.layers import LayerBlob
from services.builder.sources.oci_types import (
    INDEX_TYPES,
    LAYER_TYPES,
    MANIFEST_TYPES,
    REF_NAME,
    Descriptor,
    ImageConfig,
    Index,
    Manifest,
    OciImage,
    RuntimeConfig,
)
from services.builder.sources.platform import Platform
from services.builder.sources.progress import ProgressReporter

MAX_DOCUMENT = 4 << 20  # manifests, indexes and configs are small JSON documents
MAX_NESTING = 4
CHUNK = 1 << 20
S = TypeVar("S", bound=msgspec.Struct)


class OciLayout:
    """An OCI image layout directory, read without trusting it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not (self.path / "index.json").is_file() or not (self.path / "oci-layout").is_file():
            raise NotFound(
                f"{self.path} is not an OCI image layout (no index.json or oci-layout)",
                field="source",
            )

    def read_image(
        self, *, tag: str | None, platform: Platform, reporter: ProgressReporter
    ) -> OciImage:
        """The image `tag` names (or the only one), for `platform`, all blobs verified."""
        digest, index, top = self._entry(tag)
        if top is None:  # index.json itself lists the platforms
            manifest_desc = self._pick(index, platform, "index.json")
        else:
            manifest_desc = self._resolve(top, platform)
        manifest = _decode(self.document(manifest_desc, "manifest"), Manifest, "manifest")
        config = _decode(self.document(manifest.config, "image config"), ImageConfig, "config")
        self._check_platform(config, platform)
        layers = self._layers(manifest, config)
        self._verify(manifest.layers, reporter)
        image_platform = Platform(config.os, config.architecture, config.variant)
        return OciImage(
            digest=digest,
            manifest_digest=manifest_desc.digest,
            config_digest=manifest.config.digest,
            platform=str(image_platform),
            config=config.config or RuntimeConfig(),
            layers=layers,
        )

    def digest(self, tag: str | None) -> str:
        """The digest of what `tag` (or the only image) names: an image index or manifest."""
        return self._entry(tag)[0]

    # -- choosing --

    def _entry(self, tag: str | None) -> tuple[str, Index, Descriptor | None]:
        index_bytes = _read_capped(self.path / "index.json", "index.json")
        index = _decode(index_bytes, Index, f"{self.path}/index.json")
        top = self._top(index, tag)
        if top is None:
            return f"sha256:{hashlib.sha256(index_bytes).hexdigest()}", index, None
        return top.digest, index, top

    def _top(self, index: Index, tag: str | None) -> Descriptor | None:
        tags = sorted({t for d in index.manifests if (t := (d.annotations or {}).get(REF_NAME))})
        if tag is not None:
            for desc in index.manifests:
                if (desc.annotations or {}).get(REF_NAME) == tag:
                    return desc
            raise NotFound(
                f"no image tagged {tag!r} in {self.path} (tags: {', '.join(tags) or 'none'})",
                field="source",
            )
        if len(index.manifests) == 1:
            return index.manifests[0]
        if index.manifests and all(d.platform is not None for d in index.manifests):
            return None
        raise Invalid(
            f"{self.path} holds {len(index.manifests)} images; name one as oci:DIR:TAG"
            f" (tags: {', '.join(tags) or 'none'})",
            field="source",
        )

    def _resolve(self, desc: Descriptor, platform: Platform, depth: int = 0) -> Descriptor:
        """Follow image indexes down to the manifest for `platform`."""
        if desc.mediaType in MANIFEST_TYPES:
            return desc
        if desc.mediaType not in INDEX_TYPES:
            raise Invalid(f"{desc.digest} has unsupported media type {desc.mediaType!r}")
        if depth >= MAX_NESTING:
            raise Invalid(f"image index {desc.digest} nests too deep", field="source")
        index = _decode(self.document(desc, "image index"), Index, f"image index {desc.digest}")
        return self._resolve(self._pick(index, platform, desc.digest), platform, depth + 1)

    def _pick(self, index: Index, platform: Platform, where: str) -> Descriptor:
        offered: list[str] = []
        for desc in index.manifests:
            plat = desc.platform
            if plat is None:
                continue
            offered.append(str(Platform(plat.os, plat.architecture, plat.variant)))
            if platform.matches(plat.os, plat.architecture, plat.variant):
                return desc
        raise NotFound(
            f"no {platform} image in {where} (it has: {', '.join(offered) or 'none'})",
            field="platform",
        )

    def _check_platform(self, config: ImageConfig, platform: Platform) -> None:
        if config.architecture and not platform.matches(
            config.os or platform.os, config.architecture, config.variant
        ):
            found = Platform(config.os, config.architecture, config.variant)
            raise Invalid(f"the image is {found}, not {platform}", field="platform")

    def _layers(self, manifest: Manifest, config: ImageConfig) -> list[LayerBlob]:
        diff_ids = config.rootfs.diff_ids
        if len(diff_ids) != len(manifest.layers):
            raise Invalid(
                f"manifest lists {len(manifest.layers)} layers, its config {len(diff_ids)}",
                field="source",
            )
        layers = []
        for number, (desc, diff_id) in enumerate(zip(manifest.layers, diff_ids, strict=True), 1):
            if desc.mediaType not in LAYER_TYPES:
                raise Invalid(
                    f"layer {number} ({desc.digest}) has unsupported media type {desc.mediaType!r}",
                    field="source",
                )
            label = f"layer {number} ({desc.digest})"
            path = self._blob_path(desc, label)
            layers.append(LayerBlob(path=path, label=label, size=desc.size, diff_id=diff_id))
        return layers

    # -- blobs --

    def _blob_path(self, desc: Descriptor, what: str) -> Path:
        try:
            hexdigits = parse_digest(desc.digest)
        except Invalid:
            raise Invalid(f"{what}: unsupported digest {desc.digest!r}", field="source") from None
        path = self.path / "blobs" / "sha256" / hexdigits
        if not path.is_file():
            raise NotFound(f"{what}: blob {desc.digest} is missing from {self.path}")
        return path

    def document(self, desc: Descriptor, what: str) -> bytes:
        if desc.size > MAX_DOCUMENT:
            raise Invalid(f"{what} {desc.digest} is {desc.size} bytes; too large", field="source")
        chunks: list[bytes] = []
        self._hash(desc, f"{what} {desc.digest}", chunks.append)
        return b"".join(chunks)

    def _verify(self, layers: list[Descriptor], reporter: ProgressReporter) -> None:
        total = sum(desc.size for desc in layers)
        done = 0
        reporter.report("verify", 0, total, force=True)
        for number, desc in enumerate(layers, 1):

            def tick(chunk: bytes, files: int = number - 1) -> None:
                nonlocal done
                done += len(chunk)
                reporter.report("verify", done, total, files)

            self._hash(desc, f"layer {number} blob {desc.digest}", tick)
        reporter.report("verify", done, total, len(layers), force=True)

    def _hash(self, desc: Descriptor, what: str, sink: Callable[[bytes], None]) -> None:
        """Hash the blob of `desc`, passing each chunk to `sink`; digest and size must match."""
        path = self._blob_path(desc, what)
        hasher = hashlib.sha256()
        size = 0
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise Invalid(f"{what}: blob is a symlink; refused", field="source") from None
            raise
        with open(fd, "rb") as blob:
            while chunk := blob.read(CHUNK):
                size += len(chunk)
                if size > desc.size:
                    break
                hasher.update(chunk)
                sink(chunk)
        if size != desc.size:
            raise Invalid(
                f"{what}: blob has {'more than ' if size > desc.size else ''}{size} bytes,"
                f" its descriptor says {desc.size}",
                field="source",
            )
        if hasher.hexdigest() != parse_digest(desc.digest):
            raise Invalid(
                f"{what}: content does not match its digest (it hashes to"
                f" sha256:{hasher.hexdigest()})",
                field="source",
            )


def _read_capped(path: Path, what: str) -> bytes:
    with open(path, "rb") as file:
        data = file.read(MAX_DOCUMENT + 1)
    if len(data) > MAX_DOCUMENT:
        raise Invalid(f"{what} is larger than {MAX_DOCUMENT} bytes", field="source")
    return data


def _decode(data: bytes, kind: type[S], what: str) -> S:
    try:
        return msgspec.json.decode(data, type=kind)
    except msgspec.DecodeError as err:
        raise Invalid(f"{what} is not a valid {kind.__name__}: {err}", field="source") from None
