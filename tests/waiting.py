"""Waiting for what no event announces (another process's state, a watch inside a service):
one poll loop, async and sync, that gives up after a given time with a message naming what it
waited for and the last value or error it saw. Where an event can be awaited, await it."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar, overload

import httpx

T = TypeVar("T")

SHOWN: Final = 300  # characters of the last value in the message


class NeverHappened(AssertionError):
    """What a test waited for did not happen within the time it gave."""


def _shown(value: object) -> str:
    if isinstance(value, httpx.Response):  # its repr has the status but not the body
        return f"{value.status_code} {value.text[:SHOWN]!r}"
    text = repr(value)
    return text if len(text) <= SHOWN else f"{text[:SHOWN]}..."


def _gave_up(what: str, within: float, tries: int, last: object, hung: bool) -> NeverHappened:
    if isinstance(last, BaseException):
        seen = f"last error: {last!r}"
    else:
        seen = f"last value: {_shown(last)}"
    running = ", the last still running" if hung else ""
    return NeverHappened(f"{what}: not within {within:g} s ({tries} tries{running}); {seen}")


Errors = tuple[type[Exception], ...]


@overload
async def eventually(
    probe: Callable[[], Awaitable[T | None] | T | None],
    what: str,
    *,
    within: float,
    every: float = ...,
    ignoring: Errors = ...,
) -> T: ...
@overload
async def eventually(
    probe: Callable[[], Awaitable[T] | T],
    what: str,
    *,
    within: float,
    until: Callable[[T], object],
    every: float = ...,
    ignoring: Errors = ...,
) -> T: ...
async def eventually(
    probe: Callable[[], Any],
    what: str,
    *,
    within: float,
    until: Callable[[Any], object] = bool,
    every: float = 0.05,
    ignoring: Errors = (),
) -> Any:
    """The first value of `probe()` (awaited if awaitable) that `until` accepts (by default: a
    true one), tried every `every` s (0: again at once, when each try is itself a request).
    An error of a type in `ignoring` means "not yet"; any other ends the wait at once.
    NeverHappened after `within` s, a try still running included."""
    tries, trying = 0, False
    last: object = None
    deadline = asyncio.timeout(within)
    try:
        async with deadline:
            while True:
                tries, trying = tries + 1, True
                try:
                    value = probe()
                    if inspect.isawaitable(value):
                        value = await value
                except ignoring as err:
                    last = err
                else:
                    if until(value):
                        return value
                    last = value
                trying = False
                await asyncio.sleep(every)
    except TimeoutError as err:
        if not deadline.expired():
            raise  # the probe's own, not in `ignoring`
        raise _gave_up(what, within, tries, last, hung=trying) from (
            last if isinstance(last, BaseException) else err
        )


@overload
def eventually_sync(
    probe: Callable[[], T | None],
    what: str,
    *,
    within: float,
    every: float = ...,
    ignoring: Errors = ...,
) -> T: ...
@overload
def eventually_sync(
    probe: Callable[[], T],
    what: str,
    *,
    within: float,
    until: Callable[[T], object],
    every: float = ...,
    ignoring: Errors = ...,
) -> T: ...
def eventually_sync(
    probe: Callable[[], Any],
    what: str,
    *,
    within: float,
    until: Callable[[Any], object] = bool,
    every: float = 0.05,
    ignoring: Errors = (),
) -> Any:
    """`eventually` for code outside an event loop (fixtures that start processes, threads).
    A try that blocks is not cut short: give the probe its own timeout."""
    deadline = time.monotonic() + within
    tries = 0
    last: object = None
    while True:
        tries += 1
        try:
            value = probe()
        except ignoring as err:
            last = err
        else:
            if until(value):
                return value
            last = value
        left = deadline - time.monotonic()
        if left <= 0:
            raise _gave_up(what, within, tries, last, hung=False) from (
                last if isinstance(last, BaseException) else None
            )
        time.sleep(min(every, left))
