"""Which images a registry push concerns: the Distribution registry's notification envelope,
and matching a pushed repository and tag against the sources images were imported from.

Registry hosts are spelled many ways for the same place (`localhost:5000`, `127.0.0.1:5000`,
`docker.io`, `registry-1.docker.io`); a push matches an image when the repository and tag are
the same and the image's host is one the notification names (the Host header the pusher used,
or the host in the target URL) once both are spelled the canonical way.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

import msgspec

from libs.common.errors import Invalid
from services.builder.sources import RegistrySource, parse_source

ENVELOPE_TYPE: Final = "application/vnd.docker.distribution.events.v1+json"
MANIFEST_TYPES: Final = frozenset(
    {
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    }
)
_LOOPBACK: Final = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
_DOCKER_HUB: Final = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})


class Target(msgspec.Struct, kw_only=True):
    mediaType: str = ""
    digest: str = ""
    repository: str = ""
    url: str = ""
    tag: str | None = None


class RequestInfo(msgspec.Struct, kw_only=True):
    host: str = ""
    addr: str = ""


class RegistryEvent(msgspec.Struct, kw_only=True):
    id: str = ""
    action: str = ""
    target: Target = msgspec.field(default_factory=Target)
    request: RequestInfo = msgspec.field(default_factory=RequestInfo)

    def hosts(self) -> set[str]:
        """Every spelling of the registry this event names, canonical."""
        named = {self.request.host, urlsplit(self.target.url).netloc if self.target.url else ""}
        return {canonical_host(host) for host in named if host}


class Envelope(msgspec.Struct, kw_only=True):
    events: list[RegistryEvent] = msgspec.field(default_factory=list)


def decode_envelope(body: bytes) -> Envelope:
    try:
        return msgspec.json.decode(body, type=Envelope)
    except msgspec.DecodeError as err:
        raise Invalid(f"not a registry notification envelope: {err}", field="events") from None


def manifest_pushes(envelope: Envelope) -> list[RegistryEvent]:
    """Pushes of a tagged manifest or index (blobs, pulls and pushes by digest say nothing
    a tag-following image needs)."""
    return [
        event
        for event in envelope.events
        if event.action == "push"
        and event.target.mediaType in MANIFEST_TYPES
        and event.target.tag
        and event.target.repository
    ]


def canonical_host(host: str) -> str:
    """`LOCALHOST:5000` → `localhost:5000`; `127.0.0.1` → `localhost`; Docker Hub one name."""
    host = host.strip().lower()
    name, port = host, ""
    if host.startswith("["):
        name, _, rest = host.partition("]")
        name += "]"
        port = rest.removeprefix(":")
    elif host.count(":") == 1:
        name, port = host.split(":")
    if name in _LOOPBACK:
        name = "localhost"
    if name in _DOCKER_HUB and port in ("", "443"):
        return "docker.io"
    return f"{name}:{port}" if port else name


def registry_source(source: str) -> RegistrySource | None:
    """The registry reference an image follows: a `docker://` source by tag, else None."""
    try:
        parsed = parse_source(source)
    except Invalid:
        return None
    if not isinstance(parsed, RegistrySource) or parsed.digest is not None:
        return None
    return parsed


def follows(source: str, repository: str, tag: str, hosts: set[str] | None) -> bool:
    """Does an image imported from `source` follow pushes of `repository:tag` (at one of
    `hosts`; None: any host, for an event already matched by the webhook)?"""
    followed = registry_source(source)
    if followed is None or (followed.repository, followed.tag) != (repository, tag):
        return False
    return hosts is None or canonical_host(followed.host) in hosts
