"""tests/events_schema.py: events as the services encode them fit the document; a payload
with a field missing or of the wrong kind, on the wrong channel, not JSON, or on a subject no
channel has does not, and the reason names the problem."""

from __future__ import annotations

import msgspec
import pytest

from libs.common import subjects
from libs.common.models.boot_stage import BootStage
from libs.common.models.discovery import DiscoveryAnswer, DiscoveryClaim
from libs.common.models.events import ChangeEvent
from libs.common.models.image import ImageBuilt, ImageRequested
from libs.common.models.overlay import OverlayEvent
from tests.events_schema import EventSchema, address_pattern

SCHEMA = EventSchema.published()
BUILT = ImageBuilt(
    name="rocky-9.4", job="j1", kind="import", revision=3, image_digest="a" * 64,
    kernel_digest="b" * 64, kernel_version="6.1", source_digest=None, size=1, files=1,
    chunks_total=1, chunks_reused=0, build_seconds=0.1, seconds=0.2, changed=["image_digest"],
)  # fmt: skip
GOOD = [
    (subjects.node("n01", "updated"),
     ChangeEvent(kind="node", name="n01", action="updated", revision=4, fields=["comment"])),
    (subjects.profile("compute", "deleted"),
     ChangeEvent(kind="profile", name="compute", action="deleted", revision=9)),
    (subjects.node("unknown", "boot"), BootStage(node="unknown", stage="ipxe", file="/ipxe/x")),
    (subjects.image("rocky-9.4", "built"), BUILT),
    (subjects.image("rocky-9.4", "requested"),
     ImageRequested(name="rocky-9.4", job="j1", kind="build", source="x")),
    (subjects.overlay("ssh.host_keys", "updated"),
     OverlayEvent(name="ssh.host_keys", action="updated", revision=2, paths=["a"])),
    (subjects.DISCOVERY, DiscoveryClaim(node="n01", revision=3, mac="52:54:00:00:00:01")),
]  # fmt: skip


@pytest.mark.parametrize(("subject", "event"), GOOD, ids=[s for s, _ in GOOD])
def test_events_as_the_services_encode_them_fit(subject: str, event: msgspec.Struct) -> None:
    assert SCHEMA.problem(subject, msgspec.json.encode(event)) is None


def test_a_reply_is_checked_against_the_operations_reply() -> None:
    answer = msgspec.json.encode(DiscoveryAnswer(node="n01", revision=4))
    assert SCHEMA.reply_problem(subjects.DISCOVERY, answer) is None
    assert SCHEMA.answers(subjects.DISCOVERY)
    assert not SCHEMA.answers(subjects.node("n01", "updated"))
    wrong = SCHEMA.reply_problem(subjects.DISCOVERY, b'{"refused": "everything"}')
    assert wrong is not None and "refused" in wrong and "everything" in wrong


@pytest.mark.parametrize(
    ("subject", "payload", "named"),
    [
        (subjects.node("n01", "boot"), b'{"node": "n01", "stage": "tftp"}', "'file' is a required"),
        (subjects.node("n01", "boot"), b'{"node": "n01", "stage": "bogus", "file": "x"}', "stage"),
        (subjects.node("n01", "updated"), b'{"kind": "node", "name": "n01", "action": "updated",'
         b' "revision": "7"}', "revision"),
        (subjects.image("x", "built"), msgspec.json.encode(
            ChangeEvent(kind="node", name="x", action="updated", revision=1)), "required"),
        (subjects.DISCOVERY, b'{"node": "n01", "revision": 0, "mac": "m"}', "revision"),
        (subjects.DISCOVERY, b'{"node": "n01", "revision": 1, "mac": "m", "extra": 1}', "extra"),
        (subjects.node("n01", "boot"), b"{not json", "not JSON"),
        ("wolfpack.node.n01.exploded", b"{}", "no channel"),
        ("wolfpack.node.a.b.updated", b"{}", "no channel"),
        ("elsewhere.node.n01.updated", b"{}", "no channel"),
    ],
)  # fmt: skip
def test_what_does_not_fit_is_named(subject: str, payload: bytes, named: str) -> None:
    problem = SCHEMA.problem(subject, payload)
    assert problem is not None and named in problem, problem


def test_an_address_parameter_is_one_token() -> None:
    pattern = address_pattern("wolfpack.image.{name}.built")
    assert pattern.fullmatch("wolfpack.image.rocky-9%2E4.built")
    assert not pattern.fullmatch("wolfpack.image.rocky-9.4.built")
    assert not pattern.fullmatch("wolfpackximage.a.built")
