"""One real `wolfpack up` for every hostile-input test: the services as deployed, attacked
through their public doors (HTTP APIs, bootd, TFTP)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.stack import UpStack, start_up

# tftpd's raw client and overlayd's event followers live with their own tests: shared here
# rather than written twice.


@pytest.fixture(scope="session")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpStack]:
    with start_up(tmp_path_factory.mktemp("hostile") / "data") as stack:
        yield stack
