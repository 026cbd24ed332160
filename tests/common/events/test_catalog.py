"""The catalog (libs/common/events/catalog.py) and the code agree: every subject that
services/ and libs/ build with libs.common.subjects names a catalogued kind and verb, read
with `ast`; a subject whose verb is chosen at run time stays at the known places, whose verbs
are catalogued too."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import NamedTuple, get_args

from libs.common import subjects
from libs.common.events.catalog import EVENTS, event

REPO = Path(__file__).resolve().parents[3]
BUILDERS = {"node", "profile", "image", "overlay", "subject", "every", "events_of", "channel"}
# Where a kind or verb is a variable, and what it can be there.
DYNAMIC = {
    # Collection.kind is "node" or "profile"; the action is updated or deleted.
    "services/registry/collection.py": {
        (kind, verb) for kind in ("node", "profile") for verb in ("updated", "deleted")
    },
    # A site overlay written or deleted: the action is the verb.
    "services/overlayd/site_overlays.py": {("overlay", "updated"), ("overlay", "deleted")},
    # How a job ends: Ending.verb.
    "services/builder/runner.py": {("image", "built"), ("image", "failed"), ("image", "unchanged")},
    # The stream's last requested, built or failed event of an image.
    "services/builder/ledger.py": {("image", "requested"), ("image", "built"), ("image", "failed")},
    # overlayd follows the registry's changes.
    "services/overlayd/bus.py": {
        (kind, verb) for kind in ("node", "profile") for verb in ("updated", "deleted")
    },
    # The catalog's own channel addresses.
    "libs/common/events/catalog.py": {(e.kind, e.verb) for e in EVENTS},
}


class Use(NamedTuple):
    path: str
    line: int
    kind: str | None  # None: not a literal
    verb: str | None  # None: not a literal, or no verb (every event of the kind)
    literal: bool


def literal(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def uses(path: Path) -> list[Use]:
    """Every call `subjects.<builder>(...)` in `path`."""
    found = []
    relative = path.relative_to(REPO).as_posix()
    for call in ast.walk(ast.parse(path.read_text(), relative)):
        if not (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and isinstance(call.func.value, ast.Name)
            and call.func.value.id == "subjects"
            and call.func.attr in BUILDERS
        ):
            continue
        args: list[ast.expr | None] = [*call.args, None, None, None]
        name = call.func.attr
        if name in ("subject",):
            kind, verb, wants_verb = args[0], args[2], True
        elif name in ("every", "channel"):
            kind, verb, wants_verb = args[0], args[1], args[1] is not None
        elif name == "events_of":
            kind, verb, wants_verb = args[0], None, False
        else:
            kind, verb, wants_verb = ast.Constant(name), args[1], True
        is_literal = literal(kind) is not None and (not wants_verb or literal(verb) is not None)
        found.append(Use(relative, call.lineno, literal(kind), literal(verb), is_literal))
    return found


def every_use() -> list[Use]:
    files = sorted(p for top in ("services", "libs") for p in (REPO / top).rglob("*.py"))
    return [use for path in files for use in uses(path)]


def test_every_subject_the_code_builds_is_catalogued() -> None:
    found = every_use()
    assert len(found) > 20
    kinds = {e.kind for e in EVENTS}
    wrong = [
        f"{u.path}:{u.line}: {u.kind}.{u.verb}"
        for u in found
        if u.literal
        and (u.kind not in kinds or (u.verb is not None and event(u.kind, u.verb) is None))
    ]
    assert wrong == [], "subjects not in libs/common/events/catalog.py"


def test_run_time_verbs_stay_where_they_are_known() -> None:
    dynamic = sorted({u.path for u in every_use() if not u.literal})
    assert dynamic == sorted(DYNAMIC), (
        "a subject whose kind or verb is a variable: add its file to DYNAMIC with the events "
        "it can be, and catalog them"
    )
    missing = sorted(pair for pairs in DYNAMIC.values() for pair in pairs if event(*pair) is None)
    assert missing == []


def test_every_kind_and_verb_is_catalogued() -> None:
    assert {e.kind for e in EVENTS} == set(get_args(subjects.Kind))
    assert {e.verb for e in EVENTS} == set(get_args(subjects.Verb))
    assert len({(e.kind, e.verb) for e in EVENTS}) == len(EVENTS)
