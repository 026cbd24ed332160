"""In-memory newc archives: GNU cpio reads them back, and equal content gives equal bytes."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from libs.common.formats.newc import Member, archive

MEMBERS = [
    Member(path="etc", mode=stat.S_IFDIR | 0o755),
    Member(path="etc/hostname", mode=stat.S_IFREG | 0o644, data=b"n01\n"),
    Member(path="warewulf/wwclient", mode=stat.S_IFREG | 0o755, uid=0, gid=0, data=b"#!/bin/sh\n"),
    Member(path="warewulf", mode=stat.S_IFDIR | 0o700),
    Member(path="etc/localtime", mode=stat.S_IFLNK | 0o777, data=b"/usr/share/zoneinfo/UTC"),
    Member(path="etc/odd", mode=stat.S_IFREG | 0o600, data=b"abc"),  # needs padding
]


def test_gnu_cpio_unpacks_what_we_write(tmp_path: Path) -> None:
    subprocess.run(["cpio", "-idm", "--quiet"], input=archive(MEMBERS), cwd=tmp_path, check=True)
    assert (tmp_path / "etc/hostname").read_bytes() == b"n01\n"
    assert (tmp_path / "etc/odd").read_bytes() == b"abc"
    assert stat.S_IMODE((tmp_path / "warewulf/wwclient").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "warewulf").stat().st_mode) == 0o700
    assert os.readlink(tmp_path / "etc/localtime") == "/usr/share/zoneinfo/UTC"


def test_same_content_same_bytes_whatever_the_order() -> None:
    assert archive(MEMBERS) == archive(reversed(MEMBERS))
    changed = [
        *MEMBERS[:1],
        Member(path="etc/hostname", mode=stat.S_IFREG | 0o644, data=b"n02\n"),
        *MEMBERS[2:],
    ]
    assert archive(changed) != archive(MEMBERS)
