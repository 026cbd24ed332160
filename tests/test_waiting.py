"""tests/waiting.py: what a test sees when a wait ends, either way."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from tests.waiting import NeverHappened, eventually, eventually_sync


async def test_the_first_accepted_value_is_returned() -> None:
    counter = itertools.count()

    async def count() -> int:
        return next(counter)

    assert await eventually(count, "3", within=5, until=lambda n: n >= 3, every=0) == 3


async def test_giving_up_names_what_and_the_last_value() -> None:
    async def never() -> str:
        return "still empty"

    with pytest.raises(NeverHappened) as failed:
        await eventually(
            never, "the file written", within=0.1, until=lambda text: text == "done", every=0.01
        )
    message = str(failed.value)
    assert message.startswith("the file written: not within 0.1 s (")
    assert message.endswith("; last value: 'still empty'")


async def test_an_ignored_error_is_the_last_seen_and_the_cause() -> None:
    async def refused() -> None:
        raise ConnectionRefusedError("nobody listens")

    with pytest.raises(NeverHappened, match="last error: ConnectionRefusedError") as failed:
        await eventually(refused, "a listener", within=0.1, ignoring=(ConnectionRefusedError,))
    assert isinstance(failed.value.__cause__, ConnectionRefusedError)


async def test_any_other_error_ends_the_wait_at_once() -> None:
    async def broken() -> None:
        raise KeyError("bug")

    async def own_timeout() -> None:
        raise TimeoutError("the probe's own")

    with pytest.raises(KeyError):
        await eventually(broken, "anything", within=60)
    with pytest.raises(TimeoutError, match="the probe's own"):
        await eventually(own_timeout, "anything", within=60)


async def test_a_hung_try_does_not_outlast_the_wait() -> None:
    async def hangs() -> None:
        await asyncio.Event().wait()

    with pytest.raises(NeverHappened, match=r"\(1 tries, the last still running\)"):
        await eventually(hangs, "an answer", within=0.1)


def test_the_sync_form_waits_and_gives_up_the_same_way() -> None:
    counter = itertools.count()
    assert eventually_sync(lambda: next(counter), "2", within=5, until=lambda n: n == 2) == 2
    with pytest.raises(NeverHappened, match=r"^a pid file: not within 0.1 s .*last value: None$"):
        eventually_sync(lambda: None, "a pid file", within=0.1, every=0.01)


async def test_a_plain_function_is_a_probe_too() -> None:
    assert await eventually(lambda: "here", "a value", within=1) == "here"
