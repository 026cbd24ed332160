"""A typed KV bucket: msgspec JSON values, compare-and-set writes, nats errors made ours.

Revisions are the bucket's stream sequences. A model with a `revision` field gets it filled
from the store on every read; the stored bytes never carry it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncGenerator, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar, cast

import msgspec
import nats.js.errors
from nats.js import api
from nats.js.kv import KV_DEL, KV_OP, KV_PURGE, KeyValue

from libs.common.bus import watch as kvwatch
from libs.common.bus.announce import Announcement, headers
from libs.common.errors import Conflict, Invalid, NotFound

log = logging.getLogger("wolfpack.kv")

T = TypeVar("T", bound=msgspec.Struct)

# Server error codes for a failed "expected last subject sequence" check.
WRONG_LAST_SEQUENCE = (10071, 10164)
# A valid key, as nats.py checks it before its own writes: these characters, no dot at
# either end.
_KEY = re.compile(r"[-/_=a-zA-Z0-9]([-/_=.a-zA-Z0-9]*[-/_=a-zA-Z0-9])?")


class Bucket(Generic[T]):
    def __init__(
        self, kv: KeyValue, model: type[T], reconnects: kvwatch.Reconnects | None = None
    ) -> None:
        self._kv = kv
        self._model = model
        # Watches start over when the connection is made again (watch.py says why).
        self._reconnects = reconnects
        fields = model.__struct_fields__
        self._has_revision = "revision" in fields
        self._frozen = bool(model.__struct_config__.frozen)
        self._decoder = msgspec.json.Decoder(model)
        self._encoder = msgspec.json.Encoder()

    @property
    def name(self) -> str:
        return self._kv._name

    def __repr__(self) -> str:
        return f"Bucket({self.name!r}, {self._model.__name__})"

    # -- reads --

    async def get(self, key: str) -> T:
        found = await self.get_or_none(key)
        if found is None:
            raise self._not_found(key)
        return found

    async def get_or_none(self, key: str) -> T | None:
        entry = await self._entry(key)
        if entry is None:
            return None
        return self._decode(key, entry.value or b"", entry.revision or 0)

    async def revision(self, key: str) -> int | None:
        """The current revision of `key`, None if absent or deleted."""
        entry = await self._entry(key)
        return entry.revision if entry else None

    async def keys(self) -> list[str]:
        return list(await self.items())

    async def items(self) -> dict[str, T]:
        """Every current value, from one watcher over the bucket (not a get per key)."""
        found: dict[str, T] = {}
        async with contextlib.aclosing(self._follow()) as changes:
            async for change in changes:
                if change is None:
                    break
                key, value, _ = change
                if value is None:
                    found.pop(key, None)
                else:
                    found[key] = value
        return found

    async def watch(
        self, ready: asyncio.Event | None = None
    ) -> AsyncGenerator[tuple[str, T | None, int], None]:
        """(key, value, revision) for every current key, then every change; None = deleted.

        `ready` is set once the current values have all been yielded. Close the iterator
        (`contextlib.aclosing`) to stop the watcher promptly.
        """
        async with contextlib.aclosing(self._follow()) as changes:
            async for change in changes:
                if change is None:
                    if ready is not None:
                        ready.set()
                else:
                    yield change

    async def _follow(self) -> AsyncGenerator[tuple[str, T | None, int] | None, None]:
        """Like watch(), with one None once the current values are through.

        nats.py's own "initial values done" marker can overtake the values (it compares
        the server's pending count with what the client has parsed so far), so it is not
        used: the current values are through at the newest stream message seen before the
        watch began, or at the first entry with nothing pending after it.
        """
        try:
            state = (await self._kv.status()).stream_info.state
        except nats.js.errors.NotFoundError as err:  # deleted since Bus.bucket found it
            raise NotFound(f"no KV bucket {self.name!r}", field="bucket") from err
        newest = state.last_seq if state.messages else 0
        through = newest == 0
        if through:
            yield None
        last = 0  # the newest revision passed on: a restarted watch replays older ones
        async with contextlib.aclosing(kvwatch.entries(self._kv, self._reconnects)) as found:
            async for found_entry, restarted in found:
                entry = cast(KeyValue.Entry | None, found_entry)
                if entry is None:
                    continue
                revision = entry.revision or 0
                if restarted and revision <= last:
                    continue
                last = max(last, revision)
                if entry.operation in (KV_DEL, KV_PURGE):
                    yield entry.key, None, revision
                else:
                    value = self._decode_or_log(entry.key, entry.value, revision)
                    if value is not None:
                        yield entry.key, value, revision
                if not through and (revision >= newest or entry.delta == 0):
                    through = True
                    yield None

    # -- compare-and-set writes --
    # Each write may carry an Announcement: the event the relay publishes once it is stored
    # (announce.py). Writes go to the bucket's subject directly, as nats.py's own do, so the
    # headers ride along.

    async def create(self, key: str, value: T, announce: Announcement | None = None) -> int:
        """Store `value` if `key` does not exist (a deleted key may be created again)."""
        data, extra = self._encode(value), _headers(announce)
        with self._mapped(key):
            try:
                return await self._write(key, data, extra, last=0)
            except nats.js.errors.KeyWrongLastSequenceError as err:
                deleted = await self._deleted_at(key)
                if deleted is None:
                    raise Conflict(f"{key} already exists in {self.name}", field="name") from err
            try:
                return await self._write(key, data, extra, last=deleted)
            except nats.js.errors.KeyWrongLastSequenceError as err:
                raise Conflict(f"{key} already exists in {self.name}", field="name") from err

    async def update(
        self, key: str, value: T, revision: int, announce: Announcement | None = None
    ) -> int:
        """Store `value` if `key` is still at `revision`; returns the new revision."""
        if revision < 1:
            raise Invalid(f"revision must be a positive number, not {revision}", field="revision")
        with self._mapped(key):
            try:
                return await self._write(
                    key, self._encode(value), _headers(announce), last=revision
                )
            except nats.js.errors.KeyWrongLastSequenceError as err:
                raise await self._stale(key, revision) from err

    async def put(self, key: str, value: T, announce: Announcement | None = None) -> int:
        """Store `value` whatever is there."""
        with self._mapped(key):
            return await self._write(key, self._encode(value), _headers(announce))

    async def delete(
        self, key: str, revision: int | None = None, announce: Announcement | None = None
    ) -> int:
        """Delete `key`; with `revision`, only if it is still at that revision. Returns the
        delete's own revision."""
        current = await self.revision(key)
        if current is None:
            raise self._not_found(key)
        if revision is not None and revision != current:
            raise Conflict(
                f"stale revision: expected {revision}, current {current}", field="revision"
            )
        extra = {KV_OP: KV_DEL, **_headers(announce)}
        with self._mapped(key):
            try:
                # Always conditional, so a write that sneaks in after the read above wins.
                return await self._write(key, b"", extra, last=current)
            except nats.js.errors.KeyWrongLastSequenceError as err:
                raise await self._stale(key, current) from err

    async def _write(
        self, key: str, data: bytes, extra: dict[str, str], last: int | None = None
    ) -> int:
        if not _KEY.fullmatch(key):
            raise nats.js.errors.InvalidKeyError(key)
        found = dict(extra)
        if last is not None:
            found[api.Header.EXPECTED_LAST_SUBJECT_SEQUENCE.value] = str(last)
        try:
            ack = await self._kv._js.publish(f"{self._kv._pre}{key}", data, headers=found or None)
        except nats.js.errors.APIError as err:
            if err.err_code in WRONG_LAST_SEQUENCE:
                raise nats.js.errors.KeyWrongLastSequenceError(description=err.description) from err
            raise
        return ack.seq

    async def _deleted_at(self, key: str) -> int | None:
        """The revision of `key`'s delete marker, None if it has a value."""
        try:
            await self._kv.get(key)
        except nats.js.errors.KeyNotFoundError as err:
            entry = getattr(err, "entry", None)
            return entry.revision if entry is not None else 0
        return None

    # -- helpers --

    async def _entry(self, key: str) -> KeyValue.Entry | None:
        with self._mapped(key):
            try:
                return await self._kv.get(key)
            except nats.js.errors.KeyNotFoundError:  # also raised for a deleted key
                return None

    async def _stale(self, key: str, expected: int) -> Exception:
        current = await self.revision(key)
        if current is None:
            return self._not_found(key)
        return Conflict(f"stale revision: expected {expected}, current {current}", field="revision")

    def _not_found(self, key: str) -> NotFound:
        return NotFound(f"{key} not found in {self.name}", field="name")

    @contextmanager
    def _mapped(self, key: str) -> Iterator[None]:
        try:
            yield
        except nats.js.errors.InvalidKeyError as err:
            raise Invalid(
                f"invalid key {key!r} for {self.name}: use letters, digits and -/_=.",
                field="name",
            ) from err

    def _encode(self, value: T) -> bytes:
        if self._has_revision:
            # The revision lives in the store's sequence, not in the bytes.
            value = msgspec.structs.replace(value, revision=0)
        return self._encoder.encode(value)

    def _decode(self, key: str, data: bytes, revision: int) -> T:
        try:
            value = self._decoder.decode(data)
        except msgspec.DecodeError as err:
            raise Invalid(f"stored value of {key} in {self.name} is unreadable: {err}") from err
        if self._has_revision:
            if self._frozen:
                value = msgspec.structs.replace(value, revision=revision)
            else:
                value.revision = revision  # type: ignore[attr-defined]
        return value

    def _decode_or_log(self, key: str, data: bytes | None, revision: int | None) -> T | None:
        """Watchers skip a value they cannot read rather than stop for everyone."""
        try:
            return self._decode(key, data or b"", revision or 0)
        except Invalid as err:
            log.error("%s", err)
            return None


def _headers(announce: Announcement | None) -> dict[str, str]:
    return headers(announce) if announce is not None else {}
