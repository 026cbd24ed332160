"""Reading a (compressed) tar stream: compression found by its magic bytes, the uncompressed
bytes counted against a budget (the decompression-bomb guard) and hashed for the diff_id."""

from __future__ import annotations

import bz2
import collections
import gzip
import hashlib
import lzma
import tarfile
import zlib
from typing import BinaryIO, Protocol

import zstandard

from libs.common.errors import Invalid

GIB = 1 << 30
DEFAULT_MAX_BYTES = 64 * GIB
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"BZh", "bzip2"),
)
# What a damaged compressed stream or tar raises, turned into one clear error by callers.
CORRUPT_ERRORS: tuple[type[Exception], ...] = (
    tarfile.TarError,
    EOFError,
    zlib.error,
    gzip.BadGzipFile,
    lzma.LZMAError,
    zstandard.ZstdError,
)


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class Budget:
    """Uncompressed bytes an import may still unpack, shared by all its layers."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.used = 0

    def take(self, size: int) -> None:
        self.used += size
        if self.used > self.max_bytes:
            raise Invalid(
                f"image unpacks to more than {self.max_bytes} bytes (the import size limit);"
                " refused as a possible decompression bomb",
                field="source",
            )


def compression_of(raw: BinaryIO) -> str | None:
    """The compression of a stream by its first bytes (None: plain); the stream is not moved."""
    head = raw.peek(8)[:8] if hasattr(raw, "peek") else b""
    return next((name for magic, name in _MAGIC if head.startswith(magic)), None)


def decompressed(raw: BinaryIO) -> Readable:
    match compression_of(raw):
        case "gzip":
            return gzip.GzipFile(fileobj=raw, mode="rb")
        case "zstd":
            return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
        case "xz":
            return lzma.LZMAFile(raw)
        case "bzip2":
            return bz2.BZ2File(raw)
        case _:
            return raw


class TarStream:
    """The uncompressed tar bytes of `raw`: counted against `budget`, hashed if asked, the
    last few chunks kept so the end of the archive can be checked."""

    def __init__(self, raw: BinaryIO, budget: Budget, *, hash_diff: bool) -> None:
        self._source = decompressed(raw)
        self._budget = budget
        self._hasher = hashlib.sha256() if hash_diff else None
        self._tail: collections.deque[tuple[int, bytes]] = collections.deque(maxlen=4)
        self.position = 0

    def read(self, size: int = -1, /) -> bytes:
        data = self._source.read(size)
        if data:
            self._budget.take(len(data))
            if self._hasher is not None:
                self._hasher.update(data)
            self._tail.append((self.position, data))
            self.position += len(data)
        return data

    def drain(self) -> None:
        """Read to the end (so the digest covers all bytes and trailing garbage is noticed)."""
        while self.read(1 << 20):
            pass

    def diff_id(self) -> str | None:
        return f"sha256:{self._hasher.hexdigest()}" if self._hasher else None

    def ended_cleanly(self, offset: int) -> bool:
        """True if a zero block (the tar end marker) was read at `offset`: Python's tarfile
        otherwise takes a truncated or garbled header for the end of the archive."""
        block = b""
        for start, data in self._tail:
            if start <= offset + len(block) < start + len(data):
                begin = offset + len(block) - start
                block += data[begin : begin + 512 - len(block)]
        return len(block) == 512 and not block.strip(b"\x00")
