"""The registry serves the AsyncAPI document of every NATS subject at /asyncapi.json, beside
/openapi.json and like it without a token; the events it publishes fit what it serves."""

from __future__ import annotations

import httpx
import msgspec

from libs.common import subjects
from libs.common.events.asyncapi import document
from tests.events_schema import EventSchema
from tests.stack import RegistryProcess, nats_client


async def test_the_asyncapi_document_is_served_without_a_token(registry: RegistryProcess) -> None:
    async with httpx.AsyncClient(base_url=registry.url) as anonymous:
        assert (await anonymous.get("/api/v1/nodes")).status_code == 401
        answer = await anonymous.get("/asyncapi.json")
        assert (await anonymous.get("/openapi.json")).status_code == 200
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == document()
    assert answer.json()["channels"]["nodeUpdated"]["address"] == "wolfpack.node.{name}.updated"


async def test_the_openapi_document_lists_it(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/openapi.json")).json()
    assert spec["paths"]["/asyncapi.json"]["get"]["tags"] == ["events"]


async def test_the_registrys_events_fit_the_document_it_serves(
    registry: RegistryProcess, api: httpx.AsyncClient
) -> None:
    served = EventSchema((await api.get("/asyncapi.json")).json())
    async with nats_client(registry.nats_url) as nc:
        events = await nc.subscribe(subjects.ALL)
        await nc.flush()
        assert (await api.put("/api/v1/profiles/compute", json={"comment": "c"})).is_success
        assert (await api.put("/api/v1/nodes/n01", json={"profiles": ["compute"]})).is_success
        assert (await api.delete("/api/v1/nodes/n01")).is_success
        heard = [await events.next_msg(timeout=5) for _ in range(3)]
    assert [m.subject for m in heard] == [
        subjects.profile("compute", "updated"),
        subjects.node("n01", "updated"),
        subjects.node("n01", "deleted"),
    ]
    for msg in heard:
        assert served.problem(msg.subject, msg.data) is None, msgspec.json.decode(msg.data)
