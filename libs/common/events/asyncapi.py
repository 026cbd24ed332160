"""The AsyncAPI 3.0 document of every NATS subject wolfpack uses, made from the catalog and the
JSON Schema msgspec writes for each payload Struct. The registry serves it (GET /asyncapi.json)
and docs/asyncapi.json keeps a copy:

    python -m libs.common.events.asyncapi > docs/asyncapi.json
"""

from __future__ import annotations

import json
import sys
from importlib import metadata
from typing import Any, Final
from urllib.parse import urlsplit

import msgspec

from libs.common import names, subjects
from libs.common.events.catalog import EVENTS, REQUESTS, Event, Request
from libs.common.settings import Settings

SCHEMA_REF: Final = "#/components/schemas/{name}"
JSON: Final = "application/json"

DESCRIPTION: Final = f"""\
Every event wolfpack publishes on NATS, and the request-reply subjects its services answer.

Events are `{subjects.PREFIX}.<kind>.<name>.<verb>`, JSON. The JetStream stream \
`{names.STREAM}` captures `{subjects.ALL}`: a durable consumer of that stream resumes where it \
stopped. A name is one subject token: `%` is spelled `%25` and `.` `%2E` (image `rocky-9.4` is \
`{subjects.image("rocky-9.4", "built")}`); every payload carries the name as it is. Events name \
what changed, never secret values: read the object from its KV bucket at the event's revision or \
later.

Request-reply subjects lie outside the stream, under `wolfpack-rpc.>`.

Generated from wolfpack's msgspec Structs (libs/common/events); the subjects in prose and what \
delivery is guaranteed: docs/events.md."""


def _version() -> str:
    try:
        return metadata.version("wolfpack")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def _camel(*words: str) -> str:
    parts = [p for w in words for p in w.replace("-", "_").replace(".", "_").split("_") if p]
    return parts[0] + "".join(p.capitalize() for p in parts[1:])


def _ref(*path: str) -> dict[str, str]:
    return {"$ref": "#/" + "/".join(path)}


def _name_parameter(kind: str) -> dict[str, Any]:
    return {
        "description": (
            f"The {kind}'s name as one subject token: `%` is spelled `%25` and `.` `%2E` "
            "(libs/common/subjects.py `token`); the payload carries the name as it is."
        )
    }


def _message(payload: type[msgspec.Struct]) -> dict[str, Any]:
    name = payload.__name__
    return {"name": name, "title": name, "contentType": JSON, "payload": _ref(*_schema(name))}


def _schema(name: str) -> tuple[str, ...]:
    return ("components", "schemas", name)


def _event_channel(event: Event) -> dict[str, Any]:
    message = event.payload.__name__
    return {
        "address": event.address,
        "title": f"{event.kind} {event.verb}",
        "summary": event.summary,
        "parameters": {"name": _name_parameter(event.kind)},
        "messages": {message: _ref("components", "messages", message)},
    }


def _event_operation(channel: str, event: Event) -> dict[str, Any]:
    message = event.payload.__name__
    return {
        "action": "send",
        "channel": _ref("channels", channel),
        "summary": event.summary,
        "description": f"Published by {' and '.join(event.publishers)}.",
        "tags": [{"name": service} for service in event.publishers],
        "messages": [_ref("channels", channel, "messages", message)],
    }


def _request_channels(channel: str, request: Request) -> dict[str, dict[str, Any]]:
    asked, answered = request.request.__name__, request.reply.__name__
    return {
        channel: {
            "address": request.subject,
            "summary": request.summary,
            "messages": {asked: _ref("components", "messages", asked)},
        },
        f"{channel}Reply": {
            # AsyncAPI's "unknown or dynamic": the requester's own inbox.
            "address": None,
            "description": "The request's NATS reply subject (an inbox the requester chose).",
            "messages": {answered: _ref("components", "messages", answered)},
        },
    }


def _request_operation(channel: str, request: Request) -> dict[str, Any]:
    asked, answered = request.request.__name__, request.reply.__name__
    return {
        "action": "receive",
        "channel": _ref("channels", channel),
        "summary": request.summary,
        "description": (
            f"{request.requester} asks, {request.responder} answers (its replicas share the "
            "subject in a queue group: one of them answers each request)."
        ),
        "tags": [{"name": request.responder}],
        "messages": [_ref("channels", channel, "messages", asked)],
        "reply": {
            "channel": _ref("channels", f"{channel}Reply"),
            "messages": [_ref("channels", f"{channel}Reply", "messages", answered)],
        },
    }


def _payloads() -> list[type[msgspec.Struct]]:
    found: list[type[msgspec.Struct]] = []
    for event in EVENTS:
        found.append(event.payload)
    for request in REQUESTS:
        found += [request.request, request.reply]
    return list(dict.fromkeys(found))


def document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document, as a JSON-ready dict in a stable order."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for event in EVENTS:
        channel = _camel(event.kind, event.verb)
        channels[channel] = _event_channel(event)
        operations[_camel("publish", event.kind, event.verb)] = _event_operation(channel, event)
    for request in REQUESTS:
        channel = _camel(*request.subject.split(".")[1:])
        channels |= _request_channels(channel, request)
        operations[_camel("answer", channel)] = _request_operation(channel, request)
    payloads = _payloads()
    _, schemas = msgspec.json.schema_components(payloads, ref_template=SCHEMA_REF)
    nats = urlsplit(Settings().nats_url)
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "wolfpack events",
            "version": _version(),
            "description": DESCRIPTION,
            "license": {"name": "BSD-3-Clause"},
        },
        "defaultContentType": JSON,
        "servers": {
            "nats": {
                "host": nats.netloc,
                "protocol": "nats",
                "description": (
                    "wolfpack's NATS (`wolfpack up` embeds one, asking for the client token "
                    f"in DATA/{names.NATS_TOKEN_FILE}). JetStream stream `{names.STREAM}` "
                    f"captures `{subjects.ALL}`."
                ),
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "messages": {p.__name__: _message(p) for p in payloads},
        },
    }


def render() -> str:
    """The document as docs/asyncapi.json holds it."""
    return json.dumps(document(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
