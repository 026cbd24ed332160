"""The KV record of a build, and what changed from the one before."""

from __future__ import annotations

import time

import msgspec

from libs.common.models.image import Compression, ImageMeta
from services.builder.pipeline import Built

# Fields of ImageMeta that say nothing about what changed between two builds.
_VOLATILE = frozenset(
    {"name", "revision", "built_at", "build_seconds", "chunks_reused", "chunks_total"}
)


def changed_fields(old: ImageMeta | None, new: ImageMeta) -> list[str]:
    before = msgspec.to_builtins(old) if old is not None else {}
    after = msgspec.to_builtins(new)
    return sorted(k for k in after.keys() - _VOLATILE if before.get(k) != after[k])


def image_record(
    name: str,
    source: str,
    built: Built,
    previous: ImageMeta | None,
    *,
    kernelversion: str | None,
    compression: Compression,
    insecure: bool,
) -> ImageMeta:
    """The KV record of a build; an image rebuilt from its rootfs keeps what it was imported
    from (source digest, platform, run config)."""
    build = built.build
    meta = ImageMeta(
        name=name,
        source=source,
        image_digest=build.image_digest,
        kernel_digest=built.kernel_digest,
        kernel_version=built.kernel_version,
        size=build.size,
        built_at=time.time(),
        kernelversion=kernelversion,
        compression=compression,
        insecure=insecure,
        files=build.files,
        chunks_total=build.chunks_total,
        chunks_reused=build.chunks_reused,
        build_seconds=round(build.seconds, 3),
    )
    if built.imported is not None:
        meta.source_digest = built.imported.manifest_digest
        meta.platform = built.imported.platform
        meta.config = built.run_config()
    elif previous is not None:
        meta.source_digest = previous.source_digest
        meta.platform = previous.platform
        meta.config = previous.config
    return meta


def again_record(name: str, built: Built, meta: ImageMeta) -> ImageMeta:
    """The record of a rebuild (from the rootfs, or on a push): what the image was imported
    with stays."""
    return image_record(
        name,
        meta.source,
        built,
        meta,
        kernelversion=meta.kernelversion,
        compression=meta.compression,
        insecure=meta.insecure,
    )
