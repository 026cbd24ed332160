"""One request per name, a bounded number at a time, with failures reported per name."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from libs.common.apiclient.client import Unreachable
from libs.common.errors import WolfpackError

T = TypeVar("T")

# Requests in flight at once: enough to hide latency, few enough not to crowd the registry.
DEFAULT_LIMIT = 32


class BatchFailed(WolfpackError):
    """Some names failed; `failures` holds (name, error) in the order of the names."""

    def __init__(self, failures: list[tuple[str, WolfpackError]], total: int) -> None:
        super().__init__(f"{len(failures)} of {total} failed")
        self.failures = failures

    def lines(self) -> list[str]:
        return [f"{name}: {err}" for name, err in self.failures]


async def for_each(
    names: Sequence[str],
    op: Callable[[str], Awaitable[T]],
    *,
    limit: int = DEFAULT_LIMIT,
) -> dict[str, T]:
    """Run `op(name)` for every name; raise BatchFailed after all ran if any failed."""
    gate = asyncio.Semaphore(limit)

    async def one(name: str) -> T:
        async with gate:
            return await op(name)

    outcomes = await asyncio.gather(*(one(n) for n in names), return_exceptions=True)
    results: dict[str, T] = {}
    failures: list[tuple[str, WolfpackError]] = []
    for name, outcome in zip(names, outcomes, strict=True):
        if isinstance(outcome, WolfpackError):
            failures.append((name, outcome))
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            results[name] = outcome
    if failures:
        # Once the registry is gone, one line says so better than a line per name.
        gone = next((err for _, err in failures if isinstance(err, Unreachable)), None)
        if gone is not None:
            raise gone
        raise BatchFailed(failures, len(names))
    return results
