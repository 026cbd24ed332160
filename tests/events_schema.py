"""Checks a NATS message against an AsyncAPI document, as an integrator would: the channel
whose address matches the subject, then the payload against that channel's message schemas
(JSON Schema, Draft 2020-12, the document's `#/components/...` references resolved by a
`referencing` registry). A subject no channel matches is a failure too."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import jsonschema
import referencing
from referencing.jsonschema import DRAFT202012

from libs.common.events.asyncapi import document

PUBLISHED: Final = Path(__file__).resolve().parents[1] / "docs" / "asyncapi.json"
# Where the document sits in the registry: its own `#/...` references resolve against it.
BASE: Final = "urn:wolfpack:asyncapi"


@dataclass(frozen=True)
class Channel:
    id: str
    pattern: re.Pattern[str] | None  # None: a reply channel, its address chosen at run time
    validators: dict[str, jsonschema.protocols.Validator]  # by message name


def address_pattern(address: str) -> re.Pattern[str]:
    """`wolfpack.node.{name}.updated` → a pattern of its subjects, a parameter one token."""
    parts = re.split(r"(\{[^}]+\})", address)
    return re.compile("".join("[^.]+" if p.startswith("{") else re.escape(p) for p in parts if p))


class EventSchema:
    """An AsyncAPI 3 document, ready to check (subject, payload) pairs against."""

    def __init__(self, doc: dict[str, Any]) -> None:
        resource = referencing.Resource.from_contents(doc, default_specification=DRAFT202012)
        self._registry: referencing.Registry[Any] = referencing.Registry().with_resource(
            BASE, resource
        )
        self._resolver = self._registry.resolver(BASE)
        self._channels = {cid: self._channel(cid, c) for cid, c in doc["channels"].items()}
        # The reply channel of each request channel, from the operations that answer.
        self._replies = {
            _last(op["channel"]["$ref"]): _last(op["reply"]["channel"]["$ref"])
            for op in doc.get("operations", {}).values()
            if "reply" in op
        }

    @classmethod
    def generated(cls) -> EventSchema:
        """The document the registry serves (made from the Structs of this tree)."""
        return cls(document())

    @classmethod
    def published(cls) -> EventSchema:
        """docs/asyncapi.json."""
        return cls(json.loads(PUBLISHED.read_text()))

    def _lookup(self, ref: str) -> Any:
        return self._resolver.lookup(BASE + ref).contents

    def _channel(self, cid: str, channel: dict[str, Any]) -> Channel:
        validators = {}
        for name, message in channel.get("messages", {}).items():
            if "$ref" in message:
                message = self._lookup(message["$ref"])
            payload = message["payload"]
            # The payload's own `#/...` references point into the document: give it that base.
            schema = {"$ref": BASE + payload["$ref"]} if "$ref" in payload else payload
            validators[name] = jsonschema.Draft202012Validator(schema, registry=self._registry)
        address = channel.get("address")
        pattern = address_pattern(address) if address is not None else None
        return Channel(cid, pattern, validators)

    def channel_of(self, subject: str) -> Channel | None:
        for channel in self._channels.values():
            if channel.pattern is not None and channel.pattern.fullmatch(subject):
                return channel
        return None

    def problem(self, subject: str, payload: bytes) -> str | None:
        """Why (`subject`, `payload`) does not fit the document; None when it does."""
        channel = self.channel_of(subject)
        if channel is None:
            return "no channel of the document has this subject"
        return _payload_problem(channel, payload)

    def reply_problem(self, request_subject: str, payload: bytes) -> str | None:
        """Why `payload`, the answer to a request on `request_subject`, does not fit."""
        channel = self.channel_of(request_subject)
        reply = self._replies.get(channel.id) if channel is not None else None
        if reply is None:
            return f"no operation of the document answers requests on {request_subject}"
        return _payload_problem(self._channels[reply], payload)

    def answers(self, subject: str) -> bool:
        """Whether requests on `subject` are answered (their replies can be checked)."""
        channel = self.channel_of(subject)
        return channel is not None and channel.id in self._replies


def _last(ref: str) -> str:
    """`#/channels/claim` → `claim`."""
    return ref.rsplit("/", 1)[1]


def _payload_problem(channel: Channel, payload: bytes) -> str | None:
    try:
        instance = json.loads(payload)
    except ValueError as err:
        return f"not JSON: {err}"
    found = []
    for name, validator in channel.validators.items():
        error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
        if error is None:
            return None
        where = "/".join(str(p) for p in error.absolute_path) or "the payload"
        found.append(f"{name}: {where}: {error.message}")
    return "; ".join(found) or f"channel {channel.id} has no message"
