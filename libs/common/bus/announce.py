"""The event a KV write announces, carried in the headers of the write itself.

A write and its event are one message: the relay (relay.py) reads the bucket's change stream
and publishes the event from these headers, so a writer that dies after its write still has
its event published. The JSON is ASCII-only: nats.py hands a non-ASCII header back as an
email.header.Header object on some paths.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final, Protocol, TypeVar

import msgspec

# Written only: a bucket that takes any Struct does for one that takes Nodes.
T_contra = TypeVar("T_contra", bound=msgspec.Struct, contravariant=True)

SUBJECT_HEADER: Final = "Wolfpack-Subject"
EVENT_HEADER: Final = "Wolfpack-Event"


class Announcement(msgspec.Struct, frozen=True):
    """Publish `event` on `subject` once the write is stored. An event with a `revision`
    field gets the write's revision there (unknown until the store answers)."""

    subject: str
    event: msgspec.Struct


class Announced(msgspec.Struct, frozen=True):
    """An announcement as the relay reads it back: the subject and the event's JSON fields."""

    subject: str
    fields: dict[str, Any]

    def payload(self, revision: int) -> bytes:
        """The event's JSON, its `revision` (if it has one) the write's."""
        fields = self.fields
        if "revision" in fields:
            fields = {**fields, "revision": revision}
        return msgspec.json.encode(fields)


def headers(announcement: Announcement) -> dict[str, str]:
    fields = msgspec.to_builtins(announcement.event)
    return {
        SUBJECT_HEADER: announcement.subject,
        EVENT_HEADER: json.dumps(fields, ensure_ascii=True, separators=(",", ":")),
    }


def read(found: Mapping[str, Any] | None) -> Announced | None:
    """The announcement in a stored message's headers; None if it carries none."""
    if not found:
        return None
    subject, event = found.get(SUBJECT_HEADER), found.get(EVENT_HEADER)
    if not isinstance(subject, str) or not isinstance(event, str):
        return None
    try:
        fields = json.loads(event)
    except ValueError:
        return None
    return Announced(subject, fields) if isinstance(fields, dict) else None


class AnnouncingWrites(Protocol[T_contra]):
    """The compare-and-set writes of libs.common.bus.kv.Bucket, each announcing its event:
    what a service's domain code needs to change a relayed bucket."""

    async def create(
        self, key: str, value: T_contra, announce: Announcement | None = None
    ) -> int: ...
    async def update(
        self, key: str, value: T_contra, revision: int, announce: Announcement | None = None
    ) -> int: ...
    async def delete(
        self, key: str, revision: int | None = None, announce: Announcement | None = None
    ) -> int: ...
