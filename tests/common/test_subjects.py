"""Subjects (libs/common/subjects.py): a name is one token whatever dots it holds, reads back as
itself, and its events reach the consumers that filter on them, on a real nats-server."""

from __future__ import annotations

import asyncio
import itertools
import re
from typing import get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.common import subjects
from libs.common.bus.connection import Bus
from libs.common.bus.server import NatsServer
from libs.common.errors import Invalid
from libs.common.models.image import IMAGE_NAME, ImageBuilt, ImagePushed
from libs.wolfctl.image.follow import ImageEvents
from services.builder.bus import PUSHED
from services.overlayd.bus import IMAGE_BUILT

WAIT = 5.0


@given(
    st.sampled_from(get_args(subjects.Kind)),
    st.from_regex(IMAGE_NAME, fullmatch=True)
    | st.text(st.characters(exclude_characters="*> \t\r\n"), min_size=1),
    st.sampled_from(get_args(subjects.Verb)),
)
def test_a_name_is_one_token_and_reads_back_as_itself(
    kind: subjects.Kind, name: str, verb: subjects.Verb
) -> None:
    subject = subjects.subject(kind, name, verb)
    assert len(subject.split(".")) == 4
    assert subjects.parse(subject) == (kind, name, verb)


def test_a_dotted_name_on_the_wire() -> None:
    assert subjects.image("a.b", "built") == "wolfpack.image.a%2Eb.built"
    assert subjects.overlay("ssh.keys", "updated") == "wolfpack.overlay.ssh%2Ekeys.updated"
    assert subjects.events_of("image", "a.b") == "wolfpack.image.a%2Eb.>"
    assert subjects.every("image", "built") == "wolfpack.image.*.built"
    assert subjects.every("node") == "wolfpack.node.>"


@pytest.mark.parametrize("text", ["wolfpack.image.a.b.built", "nats.image.a.built", "wolfpack.>"])
def test_what_is_not_one_of_our_subjects_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a wolfpack"):
        subjects.parse(text)


def built(name: str) -> ImageBuilt:
    return ImageBuilt(
        name=name, job="j1", kind="import", revision=1, image_digest="0" * 64,
        kernel_digest="1" * 64, kernel_version="6.1", source_digest=None, size=1, files=1,
        chunks_total=1, chunks_reused=0, build_seconds=0.1, seconds=0.1, changed=["name"],
    )  # fmt: skip


async def test_events_of_a_dotted_name_reach_the_consumers_that_filter_on_them(
    bus: Bus, nats_server: NatsServer
) -> None:
    """overlayd's consumer of built images and the builder's of pushes (durable, filtered by
    verb), and wolfctl following one image (filtered by name) all get `a.b`'s events; wolfctl
    following `a` gets none of them."""
    arrived: dict[str, asyncio.Queue[tuple[str, str]]] = {
        "built": asyncio.Queue(),
        "pushed": asyncio.Queue(),
    }

    async def on_built(subject: str, event: ImageBuilt) -> None:
        await arrived["built"].put((subject, event.name))

    async def on_pushed(subject: str, event: ImagePushed) -> None:
        await arrived["pushed"].put((subject, event.name))

    consumers = [
        await bus.consume(IMAGE_BUILT, "test-built", ImageBuilt, on_built),
        await bus.consume(PUSHED, "test-pushed", ImagePushed, on_pushed),
    ]
    following, other = [await ImageEvents.open(nats_server.url, name) for name in ("a.b", "a")]
    assert following is not None and other is not None
    try:
        await bus.publish(subjects.image("a.b", "built"), built("a.b"))
        pushed = ImagePushed(name="a.b", repository="r", tag="t", digest="sha256:" + "2" * 64)
        await bus.publish(subjects.image("a.b", "pushed"), pushed)
        await bus.publish(subjects.image("a", "built"), built("a"))
        async with asyncio.timeout(WAIT):
            assert await arrived["built"].get() == ("wolfpack.image.a%2Eb.built", "a.b")
            assert await arrived["pushed"].get() == ("wolfpack.image.a%2Eb.pushed", "a.b")
            assert await arrived["built"].get() == ("wolfpack.image.a.built", "a")
        first = await following.next(WAIT)
        assert isinstance(first, ImageBuilt) and first.name == "a.b"
        # `a`'s follower sees `a`'s own event first: none of `a.b`'s came before it.
        mine = await other.next(WAIT)
        assert isinstance(mine, ImageBuilt) and mine.name == "a"
    finally:
        for consumer in consumers:
            await consumer.stop()
        await following.close()
        await other.close()


# --- the patterns a reader filters the stream with (wolfctl events --subject) ----------------


@pytest.mark.parametrize(
    "pattern", [">", subjects.ALL, subjects.every("node", "boot"), "*.node.>", "wolfpack.node.n1.*"]
)
def test_patterns_that_can_match_events(pattern: str) -> None:
    assert subjects.check_pattern(pattern) == pattern


@pytest.mark.parametrize(
    ("pattern", "says"),
    [
        ("", "not a subject pattern"),
        ("wolfpack..boot", "not a subject pattern"),
        ("wolfpack. node", "not a subject pattern"),
        ("wolfpack.>.boot", "`>` must be the last token"),
        ("wolfpack.n*", "whole tokens only"),
        ("node.>", "matches no event: every event's subject starts with `wolfpack.`"),
        ("wolfpack-rpc.>", "matches no event"),
    ],
)
def test_patterns_refused_say_why(pattern: str, says: str) -> None:
    with pytest.raises(Invalid, match=re.escape(says)):
        subjects.check_pattern(pattern)


def test_overlapping_patterns_are_refused_together() -> None:
    assert subjects.check_patterns(["wolfpack.node.>", "wolfpack.image.>"]) == [
        "wolfpack.node.>",
        "wolfpack.image.>",
    ]
    with pytest.raises(Invalid, match="overlap: give only the wider one"):
        subjects.check_patterns([subjects.ALL, subjects.every("node", "boot")])
    with pytest.raises(Invalid, match="at least one"):
        subjects.check_patterns([])


TOKENS = ["wolfpack", "a", "b"]
# Every subject of 1..4 tokens over a small alphabet: enough to tell any two such patterns.
ALL_SUBJECTS = [
    ".".join(parts) for n in range(1, 5) for parts in itertools.product(TOKENS, repeat=n)
]


def matches(pattern: str, subject: str) -> bool:
    p, s = pattern.split("."), subject.split(".")
    for i, token in enumerate(p):
        if token == ">":
            return len(s) > i
        if i >= len(s) or (token != "*" and token != s[i]):
            return False
    return len(p) == len(s)


patterns = st.lists(st.sampled_from([*TOKENS, "*"]), min_size=1, max_size=3).flatmap(
    lambda parts: st.sampled_from([".".join(parts), ".".join([*parts, ">"])])
)


@given(patterns, patterns)
def test_two_patterns_overlap_exactly_when_a_subject_matches_both(a: str, b: str) -> None:
    both = any(matches(a, s) and matches(b, s) for s in ALL_SUBJECTS)
    assert subjects.overlap(a, b) == both == subjects.overlap(b, a)
