"""tests/event_recorder.py, the subscriber every stack's tests carry: it fails at the end on a
payload that does not fit the document (fed directly, and heard on a real nats-server), names
the subject and the error, checks the replies to the requests it hears, and passes a run
whose events all fit."""

from __future__ import annotations

import msgspec
import pytest
from nats.aio.msg import Msg

from libs.common import subjects
from libs.common.bus import rpc
from libs.common.bus.connection import Bus
from libs.common.bus.server import NatsServer, free_port
from libs.common.errors import WolfpackError
from libs.common.models.boot_stage import BootStage
from libs.common.models.discovery import DiscoveryAnswer, DiscoveryClaim
from libs.common.models.events import ChangeEvent
from tests.event_recorder import SHOWN, EventRecorder, recording
from tests.events_schema import EventSchema
from tests.stack import nats_client

UPDATED = ChangeEvent(kind="node", name="n01", action="updated", revision=2, fields=["comment"])
CLAIM = DiscoveryClaim(node="n01", revision=2, mac="52:54:00:00:00:01")


def test_a_wrong_payload_fed_to_the_recorder_fails_its_verdict() -> None:
    recorder = EventRecorder(EventSchema.generated())
    recorder.record(subjects.node("n01", "updated"), msgspec.json.encode(UPDATED))
    recorder.record(subjects.node("n01", "boot"), b'{"node": "n01", "stage": "tftp"}')
    with pytest.raises(AssertionError) as failed:
        recorder.verdict()
    message = str(failed.value)
    assert "1 of 2 NATS messages" in message
    assert "n01.boot: BootStage: the payload: 'file' is a required property" in message
    assert recorder.checked == {"node.updated": 1, "node.boot": 1}


def test_only_the_first_few_problems_are_shown() -> None:
    recorder = EventRecorder(EventSchema.generated())
    for n in range(SHOWN + 3):
        recorder.record(f"wolfpack.node.n{n}.exploded", b"{}")
    with pytest.raises(AssertionError) as failed:
        recorder.verdict()
    assert f"{SHOWN + 3} of {SHOWN + 3}" in str(failed.value)
    assert f"(first {SHOWN} shown)" in str(failed.value)
    assert str(failed.value).count("no channel") == SHOWN


def test_a_reply_heard_before_its_request_is_still_checked() -> None:
    recorder = EventRecorder(EventSchema.generated())
    recorder._heard_inbox("_INBOX.a.1", b'{"refused": "everything"}')
    recorder.record(subjects.DISCOVERY, msgspec.json.encode(CLAIM), reply="_INBOX.a.1")
    assert [subject for subject, _ in recorder.problems] == [f"reply to {subjects.DISCOVERY}"]


async def test_a_wrong_event_on_nats_fails_the_recording_naming_it(
    nats_server: NatsServer,
) -> None:
    with pytest.raises(AssertionError) as failed, recording(nats_server.url) as recorder:
        async with nats_client(nats_server.url) as nc:
            await nc.publish(subjects.node("n01", "updated"), msgspec.json.encode(UPDATED))
            await nc.publish(subjects.image("rocky-9.4", "built"), b'{"name": "rocky-9.4"}')
            await nc.publish("wolfpack.node.n01.exploded", b"{}")
            await nc.flush()
    assert recorder.total == 3
    message = str(failed.value)
    assert "2 of 3" in message
    assert "image.rocky-9%2E4.built: ImageBuilt: the payload: 'job' is a required" in message
    assert "wolfpack.node.n01.exploded: no channel" in message


async def test_requests_and_their_replies_are_checked(nats_server: NatsServer, bus: Bus) -> None:
    async def claim(request: DiscoveryClaim) -> DiscoveryAnswer:
        return DiscoveryAnswer(node=request.node, revision=request.revision + 1)

    def refused(err: WolfpackError) -> DiscoveryAnswer:
        return DiscoveryAnswer(refused="request", error=err.message)

    responder = rpc.Responder(DiscoveryClaim, claim, refused)
    await responder.start(bus, subjects.DISCOVERY, "registry")
    with recording(nats_server.url) as recorder:
        for _ in range(3):
            await rpc.request(bus, subjects.DISCOVERY, CLAIM, DiscoveryAnswer, within=5)
        await bus.publish(
            subjects.node("n01", "boot"), BootStage(node="n01", stage="tftp", file="x")
        )
    await responder.stop()
    assert recorder.checked == {
        subjects.DISCOVERY: 3,
        f"{subjects.DISCOVERY} (reply)": 3,
        "node.boot": 1,
    }
    assert recorder.problems == []


async def test_a_reply_that_does_not_fit_fails(nats_server: NatsServer, bus: Bus) -> None:
    async def wrong(msg: Msg) -> None:
        await msg.respond(b'{"node": 7}')

    await bus.nc.subscribe(subjects.DISCOVERY, cb=wrong)
    with pytest.raises(AssertionError) as failed, recording(nats_server.url):
        await bus.nc.request(subjects.DISCOVERY, msgspec.json.encode(CLAIM), timeout=5)
    assert f"reply to {subjects.DISCOVERY}: DiscoveryAnswer: node: 7 is not valid" in str(
        failed.value
    )


def test_a_nats_that_never_answers_is_named() -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    with pytest.raises(RuntimeError) as failed, recording(url, within=1):
        pass
    assert f"could not subscribe on {url} within 1 s" in str(failed.value)
    assert "Connect call failed" in str(failed.value)
