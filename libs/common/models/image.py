"""Images: what KV `images` holds, what the builder API takes and answers, and its events.

An image name is a label like a hostname's, dots allowed (`rocky-9.4`); libs.common.subjects
makes it one subject token.
"""

from __future__ import annotations

import re
from typing import Annotated, Final, Literal

import msgspec

from libs.common.errors import Invalid
from libs.common.models.events import now
from libs.common.models.fields import meta

IMAGE_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
IMAGE_NAME_HELP: Final = "1-128 letters, digits, '.', '_' and '-', starting with a letter or digit"

Compression = Literal["gzip", "zstd"]
# Where a job is: the import's phases, the kernel, then the image build's.
Phase = Literal[
    "inspect", "fetch", "verify", "extract", "swap", "kernel", "scan", "compress", "assemble"
]
JobKind = Literal["import", "build", "push", "delete"]
# `queued`: accepted by the API and recorded on the stream, not started yet.
JobState = Literal["queued", "running", "built", "failed", "unchanged"]


def validate_image_name(name: str, field: str = "name") -> str:
    if not isinstance(name, str) or not IMAGE_NAME.fullmatch(name):
        raise Invalid(f"{name!r} is not a valid image name: use {IMAGE_NAME_HELP}", field=field)
    return name


class RunConfig(msgspec.Struct, kw_only=True, omit_defaults=True):
    """How the image says it runs (from its OCI config; empty for chroots and tarballs)."""

    env: list[str] | None = None
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    working_dir: str | None = None
    user: str | None = None


class ImageMeta(msgspec.Struct, kw_only=True):
    """KV `images`, key = image name: the image a node boots, as last built successfully."""

    name: Annotated[str, meta("image name")]
    source: Annotated[str, meta("what it was imported from, as given")]
    image_digest: Annotated[str, meta("sha256 of the compressed image (VNFS) in the store")]
    kernel_digest: Annotated[str, meta("sha256 of the kernel in the store")]
    kernel_version: Annotated[str, meta("the kernel's version, as `uname -r` says it")]
    size: Annotated[int, meta("bytes of the compressed image")]
    built_at: Annotated[float, meta("when it was built (Unix time)")]
    revision: int = 0
    source_digest: Annotated[
        str | None, meta("manifest or index digest imported (None for chroots and tarballs)")
    ] = None
    platform: Annotated[str | None, meta("platform picked from an image index")] = None
    insecure: Annotated[bool, meta("registry reached over plain HTTP or unverified TLS")] = False
    compression: Compression = "gzip"
    kernelversion: Annotated[str | None, meta("kernel version asked for, if pinned")] = None
    files: Annotated[int, meta("entries in the image")] = 0
    chunks_total: int = 0
    chunks_reused: Annotated[int, meta("chunks of the last build taken from earlier builds")] = 0
    build_seconds: Annotated[float, meta("seconds the last image build took")] = 0.0
    config: RunConfig = msgspec.field(default_factory=RunConfig)


class ImportRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`POST /images`: import SOURCE as image NAME, then build it."""

    name: str
    source: str
    insecure: bool = False
    creds: Annotated[str | None, meta("registry credentials user:password", secret=True)] = None
    platform: str | None = None
    kernelversion: str | None = None
    compression: Compression = "gzip"


class ImageRequested(msgspec.Struct, kw_only=True):
    """`wolfpack.image.<name>.requested`: an import or build the API accepted as job `job`.
    The builder's durable consumer runs it, again after a crash, under the same job id.
    Registry credentials never travel here (every NATS client reads the stream): `creds`
    says the builder that accepted the request keeps them on its disk for the job."""

    name: str
    job: str
    kind: JobKind
    source: str
    # What an import asked for, credentials left out; None for a build.
    request: ImportRequest | None = None
    creds: bool = False
    at: float = msgspec.field(default_factory=now)


class ImageProgress(msgspec.Struct, kw_only=True, omit_defaults=True):
    """`wolfpack.image.<name>.progress`: how far a job is. Totals are None where unknown."""

    name: str
    job: str
    phase: Phase
    bytes_done: int = 0
    bytes_total: int | None = None
    files_done: int = 0
    files_total: int | None = None
    message: str = ""
    at: float = msgspec.field(default_factory=now)


class ImageJob(msgspec.Struct, kw_only=True):
    """One import or build of an image; the builder runs one per image at a time."""

    id: str
    name: str
    kind: JobKind
    source: str
    state: JobState = "running"
    phase: Phase | None = None
    started_at: float = msgspec.field(default_factory=now)
    finished_at: float | None = None
    reason: str | None = None
    progress: ImageProgress | None = None


class ImageDetails(ImageMeta, kw_only=True):
    """`GET /images/{name}`: the stored image, where its rootfs is, and its job."""

    rootfs: str = ""
    job: ImageJob | None = None


class ImageBuilt(msgspec.Struct, kw_only=True):
    """`wolfpack.image.<name>.built`: KV `images` holds a new build (at `revision`)."""

    name: str
    job: str
    kind: JobKind
    revision: int
    image_digest: str
    kernel_digest: str
    kernel_version: str
    source_digest: str | None
    size: int
    files: int
    chunks_total: int
    chunks_reused: int
    build_seconds: float
    seconds: float
    # ImageMeta fields whose value differs from the previous build (all, for a new image).
    changed: list[str]
    at: float = msgspec.field(default_factory=now)


class ImageFailed(msgspec.Struct, kw_only=True):
    """`wolfpack.image.<name>.failed`: a job ended without a new image; the last good one
    (if any) is still what KV `images` names."""

    name: str
    job: str
    kind: JobKind
    phase: Phase | None
    reason: str
    at: float = msgspec.field(default_factory=now)


class ImagePushed(msgspec.Struct, kw_only=True):
    """`wolfpack.image.<name>.pushed`: the registry the image came from got a new manifest
    for its repository and tag; the builder checks the digest and rebuilds if it moved."""

    name: str
    repository: str
    tag: str
    digest: str
    host: str | None = None
    at: float = msgspec.field(default_factory=now)


class ImageUnchanged(msgspec.Struct, kw_only=True):
    """`wolfpack.image.<name>.unchanged`: a push named the digest already built; no rebuild."""

    name: str
    job: str
    digest: str
    at: float = msgspec.field(default_factory=now)


class ImageDeleted(msgspec.Struct, kw_only=True):
    """`wolfpack.image.<name>.deleted`: the image left KV `images` (its blobs stay for gc)."""

    name: str
    revision: int
    at: float = msgspec.field(default_factory=now)


class WebhookAnswer(msgspec.Struct, kw_only=True):
    """`POST /webhooks/registry`: the images a notification concerned (a `pushed` event went
    out for each) and how many of its events said nothing to the builder."""

    pushed: list[str] = msgspec.field(default_factory=list)
    ignored: int = 0
