"""Request-reply on a real nats-server: typed answers, refusals for bad requests, one answer per
request from a queue group, and NoAnswer when nobody serves the subject."""

from __future__ import annotations

import msgspec
import pytest

from libs.common.bus import rpc
from libs.common.bus.connection import Bus
from libs.common.errors import Conflict, WolfpackError

SUBJECT = "wolfpack-rpc.test.echo"
WAIT = 5.0


class Ask(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    text: str
    times: int = 1


class Answer(msgspec.Struct, kw_only=True, omit_defaults=True):
    text: str = ""
    served_by: str = ""
    error: str = ""
    field: str | None = None


def refused(err: WolfpackError) -> Answer:
    return Answer(error=err.message, field=err.field)


def echo(name: str, seen: list[Ask]) -> rpc.Responder[Ask, Answer]:
    async def handle(ask: Ask) -> Answer:
        seen.append(ask)
        if ask.text == "conflict":
            raise Conflict("asked for a conflict", field="text")
        return Answer(text=ask.text * ask.times, served_by=name)

    return rpc.Responder(Ask, handle, refused)


async def test_a_request_gets_the_handlers_typed_answer(bus: Bus) -> None:
    seen: list[Ask] = []
    responder = echo("a", seen)
    await responder.start(bus, SUBJECT, "test")
    try:
        answer = await rpc.request(bus, SUBJECT, Ask(text="ab", times=3), Answer, within=WAIT)
    finally:
        await responder.stop()
    assert answer == Answer(text="ababab", served_by="a")
    assert seen == [Ask(text="ab", times=3)]


@pytest.mark.parametrize(
    ("payload", "field", "words"),
    [
        (b'{"text": "x", "times": "two"}', "times", "Expected `int`"),
        (b'{"text": "x", "colour": "red"}', "colour", "unknown field"),
        (b'{"times": 2}', "text", "missing required field"),
        (b"not json", None, "not valid JSON"),
        (b"", None, "empty"),
    ],
)
async def test_a_malformed_request_is_refused_naming_the_problem(
    bus: Bus, payload: bytes, field: str | None, words: str
) -> None:
    seen: list[Ask] = []
    responder = echo("a", seen)
    await responder.start(bus, SUBJECT, "test")
    try:
        reply = await bus.nc.request(SUBJECT, payload, timeout=WAIT)
    finally:
        await responder.stop()
    answer = msgspec.json.decode(reply.data, type=Answer)
    assert words in answer.error
    assert answer.field == field
    assert seen == []  # the handler never saw it


async def test_a_refusal_of_the_handler_is_the_answer(bus: Bus) -> None:
    responder = echo("a", [])
    await responder.start(bus, SUBJECT, "test")
    try:
        answer = await rpc.request(bus, SUBJECT, Ask(text="conflict"), Answer, within=WAIT)
    finally:
        await responder.stop()
    assert answer == Answer(error="asked for a conflict", field="text")


async def test_a_queue_group_answers_each_request_once(bus: Bus) -> None:
    seen: list[Ask] = []
    replicas = [echo("a", seen), echo("b", seen)]
    for replica in replicas:
        await replica.start(bus, SUBJECT, "test")
    answers = [
        await rpc.request(bus, SUBJECT, Ask(text=str(i)), Answer, within=WAIT) for i in range(40)
    ]
    # A stop answers what its replica already received: a second delivery would show here.
    for replica in replicas:
        await replica.stop()
    assert [a.text for a in answers] == [str(i) for i in range(40)]
    assert sorted(int(ask.text) for ask in seen) == list(range(40))


async def test_nobody_serving_the_subject_is_no_answer(bus: Bus) -> None:
    with pytest.raises(rpc.NoAnswer, match="nobody answers"):
        await rpc.request(bus, SUBJECT, Ask(text="x"), Answer, within=WAIT)


async def test_a_stopped_responder_answers_no_more(bus: Bus) -> None:
    responder = echo("a", [])
    await responder.start(bus, SUBJECT, "test")
    await responder.stop()
    with pytest.raises(rpc.NoAnswer):
        await rpc.request(bus, SUBJECT, Ask(text="x"), Answer, within=WAIT)
