"""One request per name, bounded, failures reported per name."""

from __future__ import annotations

import asyncio

import pytest

from libs.common.apiclient.client import Unreachable
from libs.common.errors import Invalid, NotFound
from libs.wolfctl.batch import BatchFailed, for_each


async def test_all_names_run_and_failures_are_named_in_order() -> None:
    async def op(name: str) -> str:
        if name in ("n03", "n07"):
            raise Invalid('"zz" is not a MAC address', field="network_devices.default.hwaddr")
        return name.upper()

    names = [f"n{i:02d}" for i in range(1, 11)]
    with pytest.raises(BatchFailed) as caught:
        await for_each(names, op)
    assert caught.value.lines() == [
        'n03: network_devices.default.hwaddr: "zz" is not a MAC address',
        'n07: network_devices.default.hwaddr: "zz" is not a MAC address',
    ]


async def test_results_by_name() -> None:
    async def op(name: str) -> int:
        return len(name)

    assert await for_each(["a", "bb"], op) == {"a": 1, "bb": 2}


async def test_concurrency_is_bounded() -> None:
    running = 0
    peak = 0

    async def op(name: str) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0)  # yield so the others can start
        running -= 1

    await for_each([str(i) for i in range(100)], op, limit=5)
    assert peak == 5


async def test_unreachable_registry_is_one_error() -> None:
    async def op(name: str) -> None:
        if name == "a":
            raise NotFound("node a not found")
        raise Unreachable("cannot reach the registry at http://x")

    with pytest.raises(Unreachable):
        await for_each(["a", "b", "c"], op)
