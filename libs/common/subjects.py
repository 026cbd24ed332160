"""Every NATS subject wolfpack publishes on and every pattern it subscribes with, built here
and nowhere else: `wolfpack.<kind>.<name>.<verb>` (DESIGN.md, "Services").

A name must be one subject token, and a dot separates tokens. Node and profile names are
hostname labels, but image and overlay names may hold dots (`rocky-9.4`, `ssh.host_keys`), so
in a subject every name is spelled with `%` as `%25` and `.` as `%2E` (`token`); `parse`
undoes it. Every event carries its name as well: `parse` is for readers that have only the
subject.
"""

from __future__ import annotations

from typing import Final, Literal, NamedTuple
from urllib.parse import unquote

from libs.common.errors import Invalid

PREFIX: Final = "wolfpack"
# The stream captures all of it.
ALL: Final = f"{PREFIX}.>"
# Request-reply subjects lie outside ALL: the stream would capture a request there and answer
# it with its own publish ack. `wolfpack-rpc.<service>.<...>` (DESIGN.md, powerd).
# bootd asks the registry to give an unknown MAC to a discoverable node here.
DISCOVERY: Final = "wolfpack-rpc.registry.discovery.claim"

Kind = Literal["node", "profile", "image", "overlay"]
Verb = Literal[
    # registry (node, profile) and overlayd (overlay): state changed; builder: image deleted
    "updated",
    "deleted",
    # node: a boot stage (tftpd, bootd); overlayd rendered its manifest, or a template failed,
    # or removed the manifest of a node that is gone
    "boot",
    "rendered",
    "render_failed",
    "unrendered",
    # image: the builder's jobs, from the accepted request to the end, and registry pushes
    "requested",
    "progress",
    "built",
    "failed",
    "unchanged",
    "pushed",
]


class Subject(NamedTuple):
    kind: str
    name: str
    verb: str


def token(name: str) -> str:
    """`name` as one subject token (`rocky-9.4` → `rocky-9%2E4`)."""
    return name.replace("%", "%25").replace(".", "%2E")


def subject(kind: Kind, name: str, verb: Verb) -> str:
    """`wolfpack.<kind>.<name>.<verb>`, the name one token."""
    return f"{PREFIX}.{kind}.{token(name)}.{verb}"


def node(name: str, verb: Verb) -> str:
    return subject("node", name, verb)


def profile(name: str, verb: Verb) -> str:
    return subject("profile", name, verb)


def image(name: str, verb: Verb) -> str:
    return subject("image", name, verb)


def overlay(name: str, verb: Verb) -> str:
    return subject("overlay", name, verb)


def every(kind: Kind, verb: Verb | None = None) -> str:
    """The pattern of `verb` for every name of `kind` (`wolfpack.image.*.built`); with no
    verb, every event of the kind (`wolfpack.image.>`)."""
    return f"{PREFIX}.{kind}.>" if verb is None else f"{PREFIX}.{kind}.*.{verb}"


def channel(kind: Kind, verb: Verb) -> str:
    """`verb`'s subject with the name as a parameter, as AsyncAPI writes a channel's address
    (`wolfpack.image.{name}.built`); the name is filled in spelled by `token`."""
    return f"{PREFIX}.{kind}.{{name}}.{verb}"


def events_of(kind: Kind, name: str) -> str:
    """The pattern of every event of one name (`wolfpack.image.rocky-9%2E4.>`)."""
    return f"{PREFIX}.{kind}.{token(name)}.>"


def parse(text: str) -> Subject:
    """The kind, name (decoded) and verb of a subject built by `subject`; ValueError if
    `text` is not one."""
    parts = text.split(".")
    if len(parts) != 4 or parts[0] != PREFIX:
        raise ValueError(f"not a {PREFIX}.<kind>.<name>.<verb> subject: {text!r}")
    return Subject(parts[1], unquote(parts[2]), parts[3])


def check_pattern(pattern: str) -> str:
    """`pattern` if it is a subject pattern that can match events of the stream (`ALL`):
    dot-separated tokens, `*` one whole token, `>` the last; else Invalid saying why."""
    tokens = pattern.split(".")
    if not pattern or any(not t or any(c.isspace() for c in t) for t in tokens):
        raise Invalid(f"{pattern!r} is not a subject pattern (tokens joined by dots, no blanks)")
    for i, t in enumerate(tokens):
        if t != "*" and t != ">" and ("*" in t or ">" in t):
            raise Invalid(f"{pattern!r}: `*` and `>` stand for whole tokens only")
        if t == ">" and i != len(tokens) - 1:
            raise Invalid(f"{pattern!r}: `>` must be the last token")
    if tokens[0] not in (PREFIX, "*", ">"):
        raise Invalid(
            f"{pattern!r} matches no event: every event's subject starts with `{PREFIX}.` "
            f"(e.g. {every('node', 'boot')})"
        )
    return pattern


def overlap(a: str, b: str) -> bool:
    """Could one subject match both patterns?"""
    left, right = a.split("."), b.split(".")
    for x, y in zip(left, right, strict=False):
        if ">" in (x, y):
            return True
        if x != y and "*" not in (x, y):
            return False
    return len(left) == len(right)


def check_patterns(patterns: list[str] | tuple[str, ...]) -> list[str]:
    """`patterns`, each checked (check_pattern), none overlapping another (NATS refuses a
    consumer with such filters); Invalid if not, or if there is none."""
    if not patterns:
        raise Invalid("at least one subject pattern")
    checked = [check_pattern(each) for each in patterns]
    for i, a in enumerate(checked):
        for b in checked[i + 1 :]:
            if overlap(a, b):
                raise Invalid(f"{a!r} and {b!r} overlap: give only the wider one")
    return checked
