"""How long the WOLFPACK stream keeps events: an age and a size, the oldest discarded first, so
the stream is one unbroken run of sequences from its first kept event to its last and a reader
who wants a sequence below the first has fallen behind (libs/common/bus/gaps.py)."""

from __future__ import annotations

from typing import Annotated, Final

import msgspec

from libs.common.errors import Invalid
from libs.common.units import DAY, show_duration, show_size

DEFAULT_MAX_AGE: Final = 7 * DAY
DEFAULT_MAX_BYTES: Final = 1024**3
# nats-server refuses a shorter max_age (and expires at about this grain anyway).
MIN_AGE: Final = 1.0
# Below this a single large event (a node's whole record) would empty the stream.
MIN_BYTES: Final = 4096


class Retention(msgspec.Struct, frozen=True, kw_only=True):
    """The stream's limits; 0 turns one off (not both: the stream would grow until JetStream's
    disk is full)."""

    max_age: Annotated[
        float, msgspec.Meta(ge=0, description="Seconds an event is kept; 0: no age limit.")
    ] = DEFAULT_MAX_AGE
    max_bytes: Annotated[
        int, msgspec.Meta(ge=0, description="Bytes the stream holds at most; 0: no size limit.")
    ] = DEFAULT_MAX_BYTES

    def __post_init__(self) -> None:
        if 0 < self.max_age < MIN_AGE:
            raise Invalid(f"want 0 (no limit) or at least {MIN_AGE:g}s", field="max_age")
        if 0 < self.max_bytes < MIN_BYTES:
            raise Invalid(f"want 0 (no limit) or at least {MIN_BYTES} bytes", field="max_bytes")
        if self.max_age == 0 and self.max_bytes == 0:
            raise Invalid(
                "an age limit, a size limit or both: without either the stream grows until "
                "JetStream's disk is full",
                field="max_age",
            )

    def describe(self) -> str:
        return described(self.max_age, self.max_bytes)


def described(max_age: float, max_bytes: int) -> str:
    """`7 days / 1 GiB`, `7 days / no size limit`: limits as a stream has them (any of them 0
    or below for none, as NATS says it)."""
    age = show_duration(max_age) if max_age > 0 else "no age limit"
    size = show_size(max_bytes) if max_bytes > 0 else "no size limit"
    return f"{age} / {size}"
