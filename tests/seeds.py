"""The random draws of a test (a fault test's moments, kills and edits) come from one seed:
fixed under CI=true, so a red CI run happens again the same way; drawn afresh on a developer's
machine, so runs there explore. $WOLFPACK_TEST_SEED sets it anywhere. The seed is printed
always (pytest shows it with a failure's output): `WOLFPACK_TEST_SEED=n` replays the run."""

from __future__ import annotations

import os
import random
from typing import Final

from tests.needs import under_ci

ENV: Final = "WOLFPACK_TEST_SEED"
CI_SEED: Final = 1


def seeded_random() -> random.Random:
    """A Random of this run's seed, printed."""
    given = os.environ.get(ENV, "").strip()
    if given:
        seed = int(given)
    elif under_ci():
        seed = CI_SEED
    else:
        seed = random.SystemRandom().randrange(1 << 30)
    print(f"{ENV}={seed}")
    return random.Random(seed)
