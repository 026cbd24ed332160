"""An image's chunk index (DATA/images/NAME/chunks.json): which chunk blobs its last build
made, in image order. The builder reads it to reuse unchanged chunks; `wolfpack gc` reads it to
keep those blobs."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path

import msgspec

log = logging.getLogger("wolfpack.store")

# Bump when the bytes written for the same entries change (header layout, order, padding):
# chunk keys hash it, and an index of another version is ignored (a full build follows).
FORMAT_VERSION = 1


class ChunkIndex(msgspec.Struct, kw_only=True):
    """What the last build of one image made: its chunks in order and the image they made."""

    format: int = FORMAT_VERSION
    image: str = ""
    # (key, blob digest), in image order.
    chunks: list[tuple[str, str]] = msgspec.field(default_factory=list)

    def digests_by_key(self) -> dict[str, str]:
        return dict(self.chunks)


def load_index(path: Path) -> ChunkIndex:
    """The index at `path`; an empty one if it is missing or unreadable (a full build follows)."""
    try:
        index = msgspec.json.decode(path.read_bytes(), type=ChunkIndex)
    except FileNotFoundError:
        return ChunkIndex()
    except (OSError, msgspec.DecodeError) as err:
        log.warning("chunk index %s unreadable, building every chunk: %s", path, err)
        return ChunkIndex()
    return index if index.format == FORMAT_VERSION else ChunkIndex()


def save_index(path: Path, index: ChunkIndex) -> None:
    """Replace the index atomically: a crash leaves the old one or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(msgspec.json.encode(index))
        os.replace(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
