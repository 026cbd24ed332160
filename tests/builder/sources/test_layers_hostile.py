"""Hostile archives: each refused with an error naming the entry, nothing written outside
the image root, the previous image at the destination untouched, no staging left behind."""

from __future__ import annotations

import os
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from libs.common.errors import Invalid
from services.builder.sources import ImportOptions, import_rootfs
from tests.builder.sources.helpers import (
    Entry,
    device,
    directory,
    file,
    hardlink,
    snapshot,
    symlink,
    tar_bytes,
)

MARK = uuid.uuid4().hex[:12]
OUTSIDE = Path(f"/tmp/wolfpack-outside-{MARK}")


def _nul_name() -> Entry:
    info, data = file("innocent")
    info.pax_headers = {"path": "etc/pass\x00wd"}
    return info, data


HOSTILE: dict[str, tuple[list[Entry], str]] = {
    "absolute path": ([file(f"/tmp/wolfpack-pwned-{MARK}", b"x")], "is an absolute path"),
    "dot-dot": ([file(f"../pwned-{MARK}", b"x")], "escapes the image root"),
    "deep dot-dot": (
        [file(f"a/../../../../../../../../tmp/wolfpack-pwned-{MARK}", b"x")],
        "escapes the image root",
    ),
    "write through absolute symlink": (
        [symlink("a", str(OUTSIDE)), file("a/pwned", b"x")],
        "does not lead to a directory in the image",
    ),
    "write through escaping relative symlink": (
        [symlink("a", "../../../../../../.." + str(OUTSIDE)), file("a/pwned", b"x")],
        "does not lead to a directory in the image",
    ),
    "hardlink to /etc/passwd": ([hardlink("passwd", "/etc/passwd")], "is an absolute path"),
    "hardlink with dot-dot": (
        [hardlink("passwd", "../../../../../../etc/passwd")],
        "escapes the image root",
    ),
    "hardlink through symlink": (
        [symlink("e", "/etc"), hardlink("passwd", "e/passwd")],
        "target is not in the image",
    ),
    "NUL in a name": ([_nul_name()], "NUL"),
}


@pytest.fixture
def previous(tmp_path: Path) -> Path:
    """A good image already at the destination."""
    dest = tmp_path / "images" / "node" / "rootfs"
    (dest / "etc").mkdir(parents=True)
    (dest / "etc" / "hostname").write_text("good\n")
    return dest


@pytest.fixture
def outside() -> Iterator[Path]:
    """A host directory that a naive extractor would write into."""
    OUTSIDE.mkdir()
    yield OUTSIDE
    OUTSIDE.rmdir()  # fails if anything was written into it


def written_outside(tmp_path: Path) -> list[str]:
    found = [str(p) for p in tmp_path.rglob(f"*pwned-{MARK}")]
    found += [str(p) for p in Path("/tmp").glob(f"wolfpack-pwned-{MARK}")]
    return found + [str(p) for p in OUTSIDE.iterdir()]


@pytest.mark.parametrize("case", sorted(HOSTILE))
async def test_hostile_tarball_refused(
    tmp_path: Path, previous: Path, outside: Path, case: str
) -> None:
    entries, message = HOSTILE[case]
    tarball = tmp_path / "hostile.tar.gz"
    tarball.write_bytes(tar_bytes([directory("etc"), file("etc/ok", b"ok"), *entries], "gzip"))
    before = snapshot(previous)
    passwd_links = os.stat("/etc/passwd").st_nlink
    staging = tmp_path / "images" / ".staging"

    with pytest.raises(Invalid, match=message) as caught:
        await import_rootfs(str(tarball), previous, staging_root=staging)

    bad = entries[-1][0]
    assert repr(bad.name) in caught.value.message or case == "NUL in a name"
    assert snapshot(previous) == before
    assert os.listdir(staging) == []
    assert written_outside(tmp_path) == []
    assert os.stat("/etc/passwd").st_nlink == passwd_links


async def test_device_refused_where_not_allowed(tmp_path: Path, previous: Path) -> None:
    tarball = tmp_path / "dev.tar"
    tarball.write_bytes(tar_bytes([directory("dev"), device("dev/kmem", "c", 1, 2)]))
    with pytest.raises(Invalid, match="'dev/kmem' is a device node"):
        await import_rootfs(
            str(tarball),
            previous,
            staging_root=tmp_path / "staging",
            options=ImportOptions(allow_devices=False),
        )
    assert (previous / "etc/hostname").read_text() == "good\n"
    # The same tarball is fine where devices are allowed (images ship /dev/console and such).
    result = await import_rootfs(str(tarball), previous, staging_root=tmp_path / "staging")
    assert result.files == 1
    assert os.major(os.lstat(previous / "dev/kmem").st_rdev) == 1


async def test_symlink_values_may_point_anywhere(tmp_path: Path, previous: Path) -> None:
    """A symlink's target is only a value: it is stored, never followed while writing."""
    tarball = tmp_path / "links.tar"
    tarball.write_bytes(
        tar_bytes([symlink("passwd", "/etc/passwd"), symlink("up", "../../../../..")])
    )
    await import_rootfs(str(tarball), previous, staging_root=tmp_path / "staging")
    assert os.readlink(previous / "passwd") == "/etc/passwd"
    assert os.readlink(previous / "up") == "../../../../.."
    assert not (previous / "etc").exists()  # the previous tree was replaced whole


def test_tarfile_keeps_hostile_names() -> None:
    """Guard on the helper: the names above reach the archive as written."""
    import io

    data = tar_bytes([file("/abs", b""), file("../up", b"")])
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        assert archive.getnames() == ["/abs", "../up"]
