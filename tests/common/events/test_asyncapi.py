"""The AsyncAPI document (libs/common/events/asyncapi.py): docs/asyncapi.json is what the
Structs make today, every channel's address is the subject the code builds, every reference
resolves, and the payload schemas stay within JSON Schema draft-07 (AsyncAPI's schema format)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib import metadata
from typing import Any

import pytest

from libs.common import names, subjects
from libs.common.events.asyncapi import document, render
from libs.common.events.catalog import EVENTS, REQUESTS
from tests.events_schema import PUBLISHED

EVENTS_MD = PUBLISHED.parent / "events.md"

REGENERATE = "python -m libs.common.events.asyncapi > docs/asyncapi.json"
# Keywords of JSON Schema 2019-09 / 2020-12 that draft-07 (AsyncAPI 3.0's default schema
# format) does not have.
NEWER_KEYWORDS = {
    "$defs", "$anchor", "$dynamicRef", "$dynamicAnchor", "$recursiveRef", "prefixItems",
    "dependentRequired", "dependentSchemas", "unevaluatedItems", "unevaluatedProperties",
    "minContains", "maxContains",
}  # fmt: skip


def test_docs_asyncapi_json_is_what_the_structs_make() -> None:
    assert PUBLISHED.read_text() == render(), (
        f"docs/asyncapi.json is out of date with the event Structs: run `{REGENERATE}`"
    )


def test_docs_events_md_lists_every_subject_with_its_payload() -> None:
    text = EVENTS_MD.read_text()
    for event in EVENTS:
        assert f"| `{event.address}` | `{event.payload.__name__}` |" in text, event.address
    for request in REQUESTS:
        row = f"| `{request.subject}` | `{request.request.__name__}` | `{request.reply.__name__}` |"
        assert row in text, request.subject


def test_the_document_names_wolfpack_its_version_and_its_nats() -> None:
    doc = document()
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"]["title"] == "wolfpack events"
    assert doc["info"]["version"] == metadata.version("wolfpack")
    assert doc["servers"]["nats"] == {
        "host": f"127.0.0.1:{names.NATS_PORT}",
        "protocol": "nats",
        "description": doc["servers"]["nats"]["description"],
    }
    assert f"`{names.STREAM}` captures `{subjects.ALL}`" in doc["servers"]["nats"]["description"]


@pytest.mark.parametrize("name", ["n01", "rocky-9.4", "50%.off"])
def test_each_event_channel_is_the_subject_the_code_builds(name: str) -> None:
    channels = {c["address"]: c for c in document()["channels"].values() if c["address"]}
    for event in EVENTS:
        channel = channels[event.address]
        assert set(channel["parameters"]) == {"name"}
        assert "%2E" in channel["parameters"]["name"]["description"]
        filled = event.address.replace("{name}", subjects.token(name))
        assert filled == subjects.subject(event.kind, name, event.verb)
        assert subjects.parse(filled) == (event.kind, name, event.verb)
        assert list(channel["messages"]) == [event.payload.__name__]


def test_every_event_is_sent_and_every_request_answered_with_a_reply() -> None:
    doc = document()
    operations = doc["operations"]
    sent = [o for o in operations.values() if o["action"] == "send"]
    assert len(sent) == len(EVENTS)
    for event, operation in zip(EVENTS, sent, strict=True):
        assert [t["name"] for t in operation["tags"]] == list(event.publishers)
    answered = [o for o in operations.values() if o["action"] == "receive"]
    assert len(answered) == len(REQUESTS)
    for request, operation in zip(REQUESTS, answered, strict=True):
        channel = resolve(doc, operation["channel"]["$ref"])
        assert channel["address"] == request.subject
        reply = resolve(doc, operation["reply"]["channel"]["$ref"])
        assert reply["address"] is None  # the requester's inbox
        assert list(reply["messages"]) == [request.reply.__name__]


def test_every_reference_resolves() -> None:
    doc = document()
    refs = [value for key, value in walk(doc) if key == "$ref"]
    assert len(refs) > 50
    for ref in refs:
        assert resolve(doc, ref) is not None, ref


def test_payload_schemas_keep_to_draft_07() -> None:
    schemas = document()["components"]["schemas"]
    assert {e.payload.__name__ for e in EVENTS} <= set(schemas)
    newer = sorted({key for key, _ in walk(schemas)} & NEWER_KEYWORDS)
    assert newer == [], f"AsyncAPI 3.0 payloads are draft-07: {newer}"


def test_the_document_is_json_with_a_stable_order() -> None:
    assert json.loads(render()) == document()
    assert render() == render()


def walk(node: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) of every object in `node`, depth first."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node
