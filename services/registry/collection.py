"""One kind of stored object (nodes or profiles): an in-memory view of its KV bucket, kept
current by a mirror, with compare-and-set writes that announce their event (the bucket's
relay publishes it once the write is stored: libs/common/bus/relay.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Generic, Literal, Protocol, TypeVar

import msgspec

from libs.common import subjects
from libs.common.bus.announce import Announcement, AnnouncingWrites
from libs.common.bus.mirror import Mirror, WatchedBucket
from libs.common.bus.relay import Fallback, KvChange
from libs.common.errors import Conflict, NotFound
from libs.common.models.events import ChangeEvent


class Stored(Protocol):
    name: str
    revision: int


T = TypeVar("T", bound=msgspec.Struct)


class ObjectBucket(WatchedBucket[T], AnnouncingWrites[T], Protocol[T]):
    """The narrow part of libs.common.bus.kv.Bucket a collection needs."""


Kind = Literal["node", "profile"]


def changed_fields(old: msgspec.Struct | None, new: msgspec.Struct | None) -> list[str]:
    """Top-level fields whose value differs (all set fields when one side is missing)."""
    a = msgspec.to_builtins(old) if old is not None else {}
    b = msgspec.to_builtins(new) if new is not None else {}
    keys = (set(a) | set(b)) - {"revision", "name"}
    return sorted(k for k in keys if a.get(k) != b.get(k))


class Collection(Generic[T]):
    def __init__(self, kind: Kind, bucket: ObjectBucket[T]) -> None:
        self.kind: Kind = kind
        self._bucket = bucket
        # The watch keeps the view current when another registry replica writes the bucket;
        # our own writes are taken in at once.
        self._mirror: Mirror[T, T] = Mirror(bucket, self._changed, keep=_named)
        self.items = self._mirror.items
        # Called with (name, old, new) whenever the view changes (own write or watched one).
        self.on_change: Callable[[str, T | None, T | None], None] | None = None

    async def load(self) -> None:
        await self._mirror.start()

    async def close(self) -> None:
        await self._mirror.stop()

    def _changed(self, name: str, old: T | None, new: T | None) -> None:
        if self.on_change:
            self.on_change(name, old, new)

    def listing(self, names: Iterable[str] | None = None) -> list[T]:
        """All objects sorted by name, or those of `names` that exist, in that order."""
        wanted = sorted(self.items) if names is None else [n for n in names if n in self.items]
        return [self.items[n] for n in wanted]

    def get(self, name: str) -> T:
        try:
            return self.items[name]
        except KeyError:
            raise NotFound(f"no {self.kind} named {name!r}", field="name") from None

    def expect_revision(self, name: str, if_match: int | None) -> T | None:
        current = self.items.get(name)
        if if_match is not None:
            if current is None:
                raise Conflict(f"{self.kind} {name!r} does not exist (If-Match {if_match})")
            if _rev(current) != if_match:
                raise Conflict(
                    f"stale revision for {self.kind} {name!r}: expected {if_match}, "
                    f"current {_rev(current)}",
                    field="revision",
                )
        return current

    async def write(self, name: str, value: T, *, previous: T | None) -> T:
        """Create (previous None) or compare-and-set update, announcing `updated`."""
        body = msgspec.structs.replace(value, name=name, revision=0)
        event = announcement(self.kind, name, "updated", changed_fields(previous, body))
        if previous is None:
            revision = await self._bucket.create(name, body, event)
        else:
            revision = await self._bucket.update(name, body, _rev(previous), event)
        stored = msgspec.structs.replace(body, revision=revision)
        self._mirror.apply(name, stored, revision)
        return stored

    async def remove(self, name: str, *, previous: T) -> None:
        event = announcement(self.kind, name, "deleted", changed_fields(previous, None))
        await self._bucket.delete(name, _rev(previous), event)
        self._mirror.apply(name, None, _rev(previous))


def announcement(
    kind: Kind, name: str, action: Literal["updated", "deleted"], fields: list[str]
) -> Announcement:
    """The event of a write; its revision is the write's, filled in by the relay."""
    event = ChangeEvent(kind=kind, name=name, action=action, revision=0, fields=fields)
    return Announcement(subjects.subject(kind, name, action), event)


def hand_made(kind: Kind) -> Fallback:
    """The event of a write made without wolfpack (`nats kv put`): which fields changed is
    not known."""

    def event(change: KvChange) -> Announcement:
        action: Literal["updated", "deleted"] = "deleted" if change.deleted else "updated"
        return announcement(kind, change.key, action, [])

    return event


def _rev(obj: msgspec.Struct) -> int:
    return int(obj.revision)  # type: ignore[attr-defined]


def _named(name: str, value: T) -> T:
    """An object as the registry serves it: named by its key."""
    if getattr(value, "name", None) == name:
        return value
    return msgspec.structs.replace(value, name=name)
