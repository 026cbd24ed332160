"""Everything that references blobs, read for `wolfpack gc` and `wolfpack fsck`: KV `boot`,
`images` and `overlays` from NATS, and the builder's chunk indexes under DATA/images.

All or nothing: a bucket that cannot be read, a value that does not decode, a chunk index
that does not parse is ReferencesUnavailable, never a partial set (gc would remove what the
missing part references).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final, TypeVar

import msgspec
import nats
import nats.errors
import nats.js.errors

from libs.common import endpoints, names
from libs.common.bus.auth import nats_token, shown_url
from libs.common.bus.kv import Bucket
from libs.common.errors import Invalid, WolfpackError
from libs.common.models.image import ImageMeta
from libs.common.models.overlay import BootManifest, OverlayMeta
from libs.common.store.chunk_index import ChunkIndex
from libs.common.store.image_dirs import CHUNK_INDEX, IMAGES_DIR, STAGING_DIR
from libs.common.store.references import References

T = TypeVar("T", bound=msgspec.Struct)
R = TypeVar("R")

CONNECT_TIMEOUT: Final = 3
CONNECT_ATTEMPTS: Final = 1
READ_TIMEOUT: Final = 300.0


class ReferencesUnavailable(WolfpackError):
    """Not every reference could be read: nothing may be removed."""


class _StrictBucket(Bucket[T]):
    """A bucket whose unreadable value stops the read (a watcher skips it, gc must not)."""

    def _decode_or_log(self, key: str, data: bytes | None, revision: int | None) -> T | None:
        return self._decode(key, data or b"", revision or 0)


def nats_url_for(data_dir: Path, nats_url: str | None) -> str:
    """`--nats` if given, else the stack's NATS from DATA/endpoints.json."""
    if nats_url:
        return nats_url
    path = data_dir / endpoints.FILE
    try:
        return endpoints.read_endpoints(data_dir).nats
    except FileNotFoundError:
        raise ReferencesUnavailable(
            f"no NATS URL: {path} does not exist (it is written by `wolfpack up`); pass --nats URL"
        ) from None
    except (OSError, msgspec.DecodeError) as err:
        raise ReferencesUnavailable(f"cannot read {path}: {err}; pass --nats URL") from None


async def read_references(
    nats_url: str, data_dir: Path, *, within: float = READ_TIMEOUT
) -> References:
    """Every referenced digest with its referrers; ReferencesUnavailable if any part fails."""
    found = References()
    await _read_kv(nats_url, nats_token(nats_url, data_dir), found, within)
    await asyncio.to_thread(read_chunk_indexes, data_dir, found)
    return found


async def _read_kv(url: str, token: str | None, found: References, within: float) -> None:
    failures: list[Exception] = []

    async def remember(err: Exception) -> None:
        """nats.py would log each attempt; the error raised names the last one."""
        failures.append(err)

    try:
        async with asyncio.timeout(CONNECT_TIMEOUT * (CONNECT_ATTEMPTS + 1)):
            nc = await nats.connect(
                url,
                token=token,
                name="wolfpack-store",
                allow_reconnect=False,
                # 0 would mean "forever" to nats.py; one retry, then give up.
                max_reconnect_attempts=CONNECT_ATTEMPTS,
                reconnect_time_wait=1,
                connect_timeout=CONNECT_TIMEOUT,
                error_cb=remember,
            )
    except (nats.errors.Error, OSError, TimeoutError) as err:
        why = _why(failures[-1] if failures else err)
        raise ReferencesUnavailable(f"cannot reach NATS at {shown_url(url)}: {why}") from None
    try:
        js = nc.jetstream()
        readers: list[tuple[str, type[msgspec.Struct], Callable[..., None]]] = [
            (names.BUCKET_BOOT, BootManifest, found.add_manifest),
            (names.BUCKET_IMAGES, ImageMeta, found.add_image),
            (names.BUCKET_OVERLAYS, OverlayMeta, found.add_overlay),
        ]
        for bucket, model, add in readers:
            values = await _guarded(url, bucket, within, _items(js, bucket, model))
            for value in values.values():
                add(value)
    finally:
        await nc.close()


async def _items(js: nats.js.JetStreamContext, bucket: str, model: type[T]) -> dict[str, T]:
    return await _StrictBucket(await js.key_value(bucket), model).items()


async def _guarded(url: str, bucket: str, within: float, work: Awaitable[R]) -> R:
    where = f"KV `{bucket}` on NATS at {shown_url(url)}"
    try:
        async with asyncio.timeout(within):
            return await work
    except TimeoutError:
        raise ReferencesUnavailable(f"reading {where} took over {within:.0f} s") from None
    except nats.js.errors.BucketNotFoundError:
        raise ReferencesUnavailable(
            f"{where} does not exist: is this the NATS of the stack that owns this DATA?"
        ) from None
    except Invalid as err:
        raise ReferencesUnavailable(f"reading {where}: {err.message}") from None
    except (nats.errors.Error, OSError) as err:
        raise ReferencesUnavailable(f"reading {where}: {_why(err)}") from None


def read_chunk_indexes(data_dir: Path, found: References) -> None:
    """The builder's chunk indexes: one per image (DATA/images/NAME/chunks.json), and those of
    jobs under way in its staging folder (a copy being built on, the one an install replaced)."""
    images = data_dir / IMAGES_DIR
    if not images.is_dir():
        return
    for folder in sorted(images.iterdir()):
        if folder.name == STAGING_DIR:
            for job in sorted(p for p in folder.iterdir() if p.is_dir()):
                for path in sorted(job.glob(f"*{CHUNK_INDEX}")):
                    _read_index(path, f"{job.name} (a builder job)", found)
        elif folder.is_dir():
            _read_index(folder / CHUNK_INDEX, folder.name, found)


def _read_index(path: Path, image: str, found: References) -> None:
    try:
        index = msgspec.json.decode(path.read_bytes(), type=ChunkIndex)
    except FileNotFoundError:
        return  # no index (yet), or a job moved it meanwhile (what it lists is young)
    except (OSError, msgspec.DecodeError) as err:
        raise ReferencesUnavailable(
            f"chunk index {path} is unreadable ({err}): rebuild the image "
            "(`wolfctl image build`) or remove the file"
        ) from None
    found.add_chunk_index(image, [index.image, *(digest for _, digest in index.chunks)])


def _why(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
