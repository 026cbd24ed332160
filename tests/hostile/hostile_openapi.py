"""schemathesis run by hand, one operation at a time, so every case is counted and every
failure is collected (not just the first): the figures docs/reliability.md reports.

Each operation is fuzzed with schema-valid data (positive) and schema-violating data
(negative), sent with the API token so writes reach the domain code. A case fails when the
answer is a 5xx, does not match the documented schema or content type, or is a 4xx without a
JSON `ErrorBody` saying what was wrong.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec
import requests
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.core.transport import Response
from schemathesis.openapi import from_url
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from libs.common.models.api import ErrorBody

CHECKS: Final = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
MODES: Final = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
# Requests that would start work the fuzzer must not start: (method, path) → why not.
Guard = Callable[[Case], str | None]


@dataclass(frozen=True)
class Seed:
    """Known values for some parameters, so cases reach existing objects, not only 404s."""

    path: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)

    def fits(self, operation: APIOperation) -> bool:
        return set(self.path) <= {p.name for p in operation.path_parameters} and set(
            self.query
        ) <= {p.name for p in operation.query}


@dataclass
class Report:
    service: str
    cases: int = 0
    server_errors: int = 0
    guarded: int = 0
    failures: dict[str, str] = field(default_factory=dict)

    def fail(self, key: str, text: str) -> None:
        self.failures.setdefault(key, text[:3000])


def error_body_problem(response: Response, method: str) -> str | None:
    """Why a 4xx answer is not a clear error, or None if it is (HEAD answers have no body)."""
    if not 400 <= response.status_code < 500 or method.upper() == "HEAD":
        return None
    content_type = (response.headers.get("content-type") or [""])[0]
    if not content_type.startswith("application/json"):
        return f"{response.status_code} answered as {content_type!r}, not a JSON error body"
    try:
        body = msgspec.json.decode(response.content, type=ErrorBody)
    except msgspec.MsgspecError as exc:
        return (
            f"{response.status_code} body is not an ErrorBody ({exc}): {response.content[:200]!r}"
        )
    if not body.error.strip():
        return f"{response.status_code} error body says nothing: {response.content[:200]!r}"
    return None


def fuzz_settings(examples: int) -> settings:
    """Bounded and repeatable: the same cases on every run, no example database."""
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )


def strategy(operation: APIOperation, mode: GenerationMode, seeds: list[Seed]) -> Any:
    """Cases for `operation`: fully generated, or with a seed's known values filled in."""
    choices = [operation.as_strategy(generation_mode=mode)]
    for seed in seeds:
        if seed.fits(operation):
            choices.append(
                operation.as_strategy(
                    generation_mode=mode,
                    path_parameters=seed.path or None,
                    query=seed.query or None,
                )
            )
    return st.one_of(choices)


def fuzz_service(
    service: str,
    base_url: str,
    token: str,
    *,
    examples: int,
    seeds: list[Seed],
    reseed: Callable[[], None],
    guard: Guard,
) -> Report:
    schema = from_url(f"{base_url}/openapi.json")
    report = Report(service)
    session = requests.Session()
    headers = {"Authorization": f"Bearer {token}"}
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            report.fail("schema", f"an operation cannot be fuzzed: {result.err()}")
            continue
        operation = result.ok()
        for mode in MODES:
            reseed()
            run = _operation_test(operation, mode, seeds, report, session, base_url, headers, guard)
            # Nothing to negate in an operation without parameters or body.
            with contextlib.suppress(Unsatisfiable):
                fuzz_settings(examples)(run)()
    return report


def _operation_test(
    operation: APIOperation,
    mode: GenerationMode,
    seeds: list[Seed],
    report: Report,
    session: requests.Session,
    base_url: str,
    headers: dict[str, str],
    guard: Guard,
) -> Callable[[], None]:
    @given(case=strategy(operation, mode, seeds))
    def run(case: Case) -> None:
        if guard(case) is not None:
            report.guarded += 1
            return
        report.cases += 1
        key = f"{operation.label} ({mode.value})"
        try:
            response = case.call(base_url=base_url, session=session, headers=headers, timeout=30)
        except requests.RequestException as exc:
            report.fail(key, f"no answer: {exc}")
            return
        if response.status_code >= 500:
            report.server_errors += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except BaseException as exc:  # a FailureGroup is a BaseExceptionGroup
            if isinstance(exc, KeyboardInterrupt):
                raise
            report.fail(key, str(exc))
        problem = error_body_problem(response, operation.method)
        if problem is not None:
            report.fail(f"{key} error body", f"{problem}\n{case.as_curl_command(headers)}")

    return run
