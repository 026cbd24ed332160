"""Every event wolfpack publishes and every request it answers on NATS, with its payload Struct
and the service that sends it: the one table the AsyncAPI document (`asyncapi.py`) and
docs/events.md are made from. Subjects come from libs.common.subjects, so the table and the
code that publishes share each kind and verb."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import msgspec

from libs.common import subjects
from libs.common.models.boot_stage import BootStage
from libs.common.models.discovery import DiscoveryAnswer, DiscoveryClaim
from libs.common.models.events import ChangeEvent
from libs.common.models.image import (
    ImageBuilt,
    ImageDeleted,
    ImageFailed,
    ImageProgress,
    ImagePushed,
    ImageRequested,
    ImageUnchanged,
)
from libs.common.models.overlay import (
    ManifestDeleted,
    OverlayEvent,
    RenderedEvent,
    RenderFailedEvent,
)


@dataclass(frozen=True)
class Event:
    """`wolfpack.<kind>.<name>.<verb>`: published by `publishers`, carrying `payload`."""

    kind: subjects.Kind
    verb: subjects.Verb
    payload: type[msgspec.Struct]
    publishers: tuple[str, ...]
    summary: str

    @property
    def address(self) -> str:
        return subjects.channel(self.kind, self.verb)


@dataclass(frozen=True)
class Request:
    """A request-reply subject (outside the stream): `requester` asks, `responder` answers."""

    subject: str
    request: type[msgspec.Struct]
    reply: type[msgspec.Struct]
    requester: str
    responder: str
    summary: str


def _change(kind: subjects.Kind, bucket: str) -> tuple[Event, Event]:
    return (
        Event(kind, "updated", ChangeEvent, ("registry",),
              f"A {kind} was created or changed in KV `{bucket}`; `fields` names the changed "
              "top-level fields, never their values."),
        Event(kind, "deleted", ChangeEvent, ("registry",),
              f"A {kind} left KV `{bucket}`."),
    )  # fmt: skip


EVENTS: Final[tuple[Event, ...]] = (
    *_change("node", "nodes"),
    *_change("profile", "profiles"),
    Event("node", "boot", BootStage, ("tftpd", "bootd"),
          "One fetch of a booting node (TFTP, iPXE script, kernel, image, overlays) or its "
          "agent's report, done or failed; a node not known by its address or MAC is `unknown`."),
    Event("node", "rendered", RenderedEvent, ("overlayd",),
          "overlayd wrote the node's boot manifest to KV `boot` with new content."),
    Event("node", "render_failed", RenderFailedEvent, ("overlayd",),
          "A template failed for the node; its last good boot manifest stays."),
    Event("node", "unrendered", ManifestDeleted, ("overlayd",),
          "The node's boot manifest left KV `boot` (the node is gone): bootd no longer boots "
          "it. `revision` is the delete's own."),
    Event("image", "requested", ImageRequested, ("builder",),
          "The builder's API accepted an import or build as a job; the builder runs it, "
          "again after a crash under the same job id."),
    Event("image", "progress", ImageProgress, ("builder",),
          "How far an image job is."),
    Event("image", "built", ImageBuilt, ("builder",),
          "A job ended with a new build in KV `images`."),
    Event("image", "failed", ImageFailed, ("builder",),
          "A job ended without a new image; the last good one stays."),
    Event("image", "unchanged", ImageUnchanged, ("builder",),
          "A push named the digest already built: no rebuild."),
    Event("image", "pushed", ImagePushed, ("builder",),
          "The registry the image came from got a new manifest for its repository and tag "
          "(the builder's webhook)."),
    Event("image", "deleted", ImageDeleted, ("builder",),
          "The image left KV `images`; its blobs stay until gc."),
    Event("overlay", "updated", OverlayEvent, ("overlayd",),
          "A site overlay changed in KV `overlays`; `paths` names the changed entries."),
    Event("overlay", "deleted", OverlayEvent, ("overlayd",),
          "A site overlay left KV `overlays`."),
)  # fmt: skip

REQUESTS: Final[tuple[Request, ...]] = (
    Request(subjects.DISCOVERY, DiscoveryClaim, DiscoveryAnswer, "bootd", "registry",
            "bootd asks the registry to give an unknown MAC to a discoverable node "
            "(compare-and-set on the node's revision); the reply says which node has it now, "
            "or why not."),
)  # fmt: skip


def event(kind: str, verb: str) -> Event | None:
    """The catalogued event of `kind` and `verb`, if there is one."""
    return next((e for e in EVENTS if (e.kind, e.verb) == (kind, verb)), None)
