"""The OCI image documents (as much of them as an import needs) and what reading one yields."""

from __future__ import annotations

from typing import Final

import msgspec

from services.builder.sources.layers import LayerBlob

REF_NAME: Final = "org.opencontainers.image.ref.name"
INDEX_TYPES: Final = frozenset(
    {
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    }
)
MANIFEST_TYPES: Final = frozenset(
    {
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    }
)
# Compression is found from each blob's first bytes; the type only has to be a layer.
LAYER_TYPES: Final = frozenset(
    {
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.v1.tar+zstd",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    }
)


class DescriptorPlatform(msgspec.Struct, kw_only=True):
    architecture: str = ""
    os: str = ""
    variant: str | None = None


class Descriptor(msgspec.Struct, kw_only=True):
    mediaType: str = ""
    digest: str
    size: int
    annotations: dict[str, str] | None = None
    platform: DescriptorPlatform | None = None


class Index(msgspec.Struct, kw_only=True):
    manifests: list[Descriptor] = msgspec.field(default_factory=list)


class Manifest(msgspec.Struct, kw_only=True):
    config: Descriptor
    layers: list[Descriptor] = msgspec.field(default_factory=list)


class RuntimeConfig(msgspec.Struct, kw_only=True, rename="pascal", omit_defaults=True):
    """How the image says it runs (Env, Entrypoint, Cmd, WorkingDir, User)."""

    env: list[str] | None = None
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    working_dir: str | None = None
    user: str | None = None


class RootFs(msgspec.Struct, kw_only=True):
    diff_ids: list[str] = msgspec.field(default_factory=list)


class ImageConfig(msgspec.Struct, kw_only=True):
    architecture: str = ""
    os: str = ""
    variant: str | None = None
    config: RuntimeConfig | None = None
    rootfs: RootFs = msgspec.field(default_factory=RootFs)


class OciImage(msgspec.Struct, kw_only=True):
    """An image chosen from a layout, its blobs verified: what to apply and to report."""

    digest: str  # of what the reference named: an image index or a manifest
    manifest_digest: str  # of the chosen platform's manifest
    config_digest: str
    platform: str
    config: RuntimeConfig
    layers: list[LayerBlob]
