"""Image source references: `docker://…`, `oci:`, `oci-archive:`, `docker-archive:`,
`docker-daemon:`, a chroot directory or a rootfs tarball, parsed into one tagged union.

Parsing is pure syntax (the text may name a path on the builder's machine, not the caller's);
whether a path exists is checked when the import runs. Local transports split path and tag at
the first colon, as skopeo does, so such paths cannot hold a colon.
"""

from __future__ import annotations

import re
from typing import Final

import msgspec

from libs.common.errors import Invalid

DOCKER_HUB: Final = "docker.io"
DEFAULT_TAG: Final = "latest"

# The grammar of github.com/distribution/reference, sha256 digests only.
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_HOST = re.compile(
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?"
)
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_TRANSPORT = re.compile(r"[a-z][a-z0-9+.-]*:")
TARBALL_SUFFIXES: Final = (".tar", ".tar.gz", ".tgz", ".tar.zst", ".tar.xz", ".tar.bz2")
FIELD: Final = "source"


class RegistrySource(msgspec.Struct, frozen=True, tag="docker"):
    """`docker://HOST/REPO:TAG` or `docker://HOST/REPO@sha256:…` (Distribution API v2)."""

    host: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        return f"{self.host}/{self.repository}"

    def pinned(self, digest: str) -> RegistrySource:
        """The same image addressed by its manifest digest (what a pull should fetch)."""
        return RegistrySource(host=self.host, repository=self.repository, digest=digest)

    def text(self) -> str:
        suffix = f"@{self.digest}" if self.digest else f":{self.tag or DEFAULT_TAG}"
        return f"docker://{self.name}{suffix}"


class OciLayoutSource(msgspec.Struct, frozen=True, tag="oci"):
    """`oci:DIR[:TAG]`: an OCI image layout directory, read in place."""

    path: str
    tag: str | None = None

    def text(self) -> str:
        return f"oci:{self.path}" + (f":{self.tag}" if self.tag else "")


class OciArchiveSource(msgspec.Struct, frozen=True, tag="oci-archive"):
    """`oci-archive:PATH[:TAG]`: a tar of an OCI image layout."""

    path: str
    tag: str | None = None

    def text(self) -> str:
        return f"oci-archive:{self.path}" + (f":{self.tag}" if self.tag else "")


class DockerArchiveSource(msgspec.Struct, frozen=True, tag="docker-archive"):
    """`docker-archive:PATH[:NAME:TAG]`: `docker save` output."""

    path: str
    reference: str | None = None

    def text(self) -> str:
        return f"docker-archive:{self.path}" + (f":{self.reference}" if self.reference else "")


class DaemonSource(msgspec.Struct, frozen=True, tag="docker-daemon"):
    """`docker-daemon:NAME[:TAG]`: an image of the local Docker engine."""

    name: str

    def text(self) -> str:
        return f"docker-daemon:{self.name}"


class ChrootSource(msgspec.Struct, frozen=True, tag="chroot"):
    """A directory holding a root file system."""

    path: str

    def text(self) -> str:
        return self.path


class TarballSource(msgspec.Struct, frozen=True, tag="tarball"):
    """A tar of a root file system (plain or gzip/zstd/xz/bzip2 compressed)."""

    path: str

    def text(self) -> str:
        return self.path


Source = (
    RegistrySource
    | OciLayoutSource
    | OciArchiveSource
    | DockerArchiveSource
    | DaemonSource
    | ChrootSource
    | TarballSource
)

_FORMS = (
    "docker://HOST/REPO[:TAG|@sha256:DIGEST], oci:DIR[:TAG], oci-archive:PATH[:TAG], "
    "docker-archive:PATH, docker-daemon:NAME[:TAG], a chroot directory or a rootfs tarball "
    f"({', '.join(TARBALL_SUFFIXES)})"
)


def parse_source(text: str) -> Source:
    """Parse an image source as `wolfctl image import SOURCE NAME` takes it."""
    if not text or text != text.strip():
        raise Invalid(f"empty or space-padded image source {text!r}; want {_FORMS}", field=FIELD)
    if "\x00" in text:
        raise Invalid("image source contains a NUL byte", field=FIELD)
    if text.startswith("docker://"):
        return parse_registry_reference(text.removeprefix("docker://"))
    transport, _, rest = text.partition(":")
    if transport in ("oci", "oci-archive", "docker-archive"):
        path, _, tag = rest.partition(":")
        if not path:
            raise Invalid(f"{transport}: needs a path, as in {transport}:/srv/image", field=FIELD)
        if transport == "docker-archive":
            return DockerArchiveSource(path=path, reference=tag or None)
        if tag and not _TAG.fullmatch(tag):
            raise Invalid(f"bad tag {tag!r} in {text!r}", field=FIELD)
        cls = OciLayoutSource if transport == "oci" else OciArchiveSource
        return cls(path=path, tag=tag or None)
    if transport == "docker-daemon":
        if not rest:
            raise Invalid(
                "docker-daemon: needs an image name, as in docker-daemon:rocky:9", field=FIELD
            )
        return DaemonSource(name=rest)
    if _TRANSPORT.match(text) and not text.startswith(("./", "/")):
        raise Invalid(f"unknown transport in {text!r}; want {_FORMS}", field=FIELD)
    if text.endswith(TARBALL_SUFFIXES):
        return TarballSource(path=text)
    if text.endswith((".gz", ".zst", ".xz", ".bz2", ".zip", ".cpio", ".img", ".sif")):
        raise Invalid(f"{text!r} is not a rootfs tarball; want {_FORMS}", field=FIELD)
    return ChrootSource(path=text)


def parse_registry_reference(ref: str) -> RegistrySource:
    """`[HOST/]REPO[:TAG|@DIGEST]`, Docker Hub and `library/` being the defaults."""
    name, at, digest = ref.partition("@")
    if at and not _DIGEST.fullmatch(digest):
        raise Invalid(f"bad digest {digest!r} in {ref!r}; want sha256:<64 hex>", field=FIELD)
    tag: str | None = None
    last_slash = name.rfind("/")
    if ":" in name[last_slash + 1 :]:
        name, _, tag = name.rpartition(":")
        if not _TAG.fullmatch(tag):
            raise Invalid(f"bad tag {tag!r} in {ref!r}", field=FIELD)
    if tag and at:
        raise Invalid(f"{ref!r} has both a tag and a digest; give one of them", field=FIELD)
    host, slash, path = name.partition("/")
    if not slash or not ("." in host or ":" in host or host == "localhost"):
        host, path = DOCKER_HUB, name
    if host == "index.docker.io":
        host = DOCKER_HUB
    if not _HOST.fullmatch(host):
        raise Invalid(f"bad registry host {host!r} in {ref!r}", field=FIELD)
    if host == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    if not path or not all(_COMPONENT.fullmatch(part) for part in path.split("/")):
        raise Invalid(
            f"bad repository {path!r} in {ref!r}: lowercase letters, digits and . _ - only",
            field=FIELD,
        )
    return RegistrySource(
        host=host, repository=path, tag=None if at else (tag or DEFAULT_TAG), digest=digest or None
    )
