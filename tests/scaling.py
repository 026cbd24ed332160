"""How a piece of work grows with its input, as the ratio of two timings taken on this machine
at this moment: its speed and its load cancel out, so a test can tell linear from quadratic
(or constant from linear) without a bound in seconds. Speed itself is for bench/."""

from __future__ import annotations

import time
from collections.abc import Callable


def growth(
    prepare: Callable[[int], Callable[[], object]], small: int, large: int, repeats: int = 5
) -> float:
    """time(large) / time(small) of the work `prepare(n)` returns (preparing is not timed),
    each the best of `repeats` runs: the run least disturbed by other work on the machine."""

    def best(n: int) -> float:
        work = prepare(n)
        runs = []
        for _ in range(repeats):
            started = time.perf_counter()
            work()
            runs.append(time.perf_counter() - started)
        return min(runs)

    return best(large) / best(small)
