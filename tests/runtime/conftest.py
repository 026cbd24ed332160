"""Fixtures the runtime tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.runtime.dhcp_network import Network, cluster_network


@pytest.fixture(scope="module")
def network() -> Iterator[Network]:
    with cluster_network() as net:
        yield net
