"""One tftpd per module (it starts in about a second), with a hostile root prepared."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tftpd.tftpd_helpers import Tftpd, need, start_tftpd

# Links a careless root might hold: to a secret file, to a directory outside, to a file inside.
HOSTILE = {
    "shadow": Path("/etc/shadow"),
    "etc": Path("/etc"),
    "nested/passwd": Path("../../../../../../etc/passwd"),
}


@pytest.fixture(scope="module")
def tftpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tftpd]:
    need()
    tmp = tmp_path_factory.mktemp("tftpd")
    with start_tftpd(tmp, prepare=HOSTILE) as server:
        (server.data / "tftp" / "inside.txt").write_text("served from inside the root\n")
        (server.data / "tftp" / "alias").symlink_to("inside.txt")
        yield server
