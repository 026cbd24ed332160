"""What bootd checks before the first byte of a blob goes out: a transfer slot for a big
answer (services.bootd.admission), then every blob's digest (libs.common.store.verified); and while
it goes out, that the node keeps taking it (services.bootd.stalls: a stalled node is cut off,
which frees its slot).

Which answers need a slot: a GET whose blobs add up to TRANSFER_BYTES or more, in practice the
kernels and images (MBs to GBs). iPXE scripts, overlays (KBs), agent reports, status, HEAD and
304 answers never wait. The rule is by size, not by route, so a big blob needs a slot however
it is asked for (`/blobs/...` with or without `?wwid=`, `/kernel/MAC`, `/provision/...`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Final

import msgspec
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from libs.common.errors import NotFound
from libs.common.http.bodies import error_response
from libs.common.http.errors import error_answer
from libs.common.store.cas import ContentStore, parse_digest
from libs.common.store.verified import BlobCorrupt, Verifier, VerifyCounts
from services.bootd.admission import Admission, AdmissionCounts
from services.bootd.stalls import CUT_OFF, STALL, StallCounts, Stalled, paced

TRANSFER_BYTES: Final = 1 << 20

log = logging.getLogger("wolfpack.bootd")


class ServingCounts(msgspec.Struct, kw_only=True):
    """`GET /api/v1/serving`: how bootd's transfer slots, blob checks and stall cut-offs
    have gone."""

    admission: AdmissionCounts
    verification: VerifyCounts
    stalls: StallCounts


class BlobGuard:
    def __init__(
        self,
        verifier: Verifier,
        admission: Admission,
        transfer_bytes: int = TRANSFER_BYTES,
        stall: float = STALL,
    ) -> None:
        if not 0 < stall < float("inf"):
            raise ValueError(f"stall must be some seconds above 0, not {stall}")
        self.verifier = verifier
        self.admission = admission
        self.transfer_bytes = transfer_bytes
        self.stall = stall
        self.cut_off = 0

    def counts(self) -> ServingCounts:
        return ServingCounts(
            admission=self.admission.counts(),
            verification=self.verifier.counts(),
            stalls=StallCounts(limit_seconds=self.stall, cut_off=self.cut_off),
        )


class ServingStore(ContentStore):
    """The store as bootd serves it: blob answers made from it are guarded."""

    def __init__(self, root: Path, guard: BlobGuard) -> None:
        super().__init__(root)
        self.guard = guard


class GuardedBlob(Response):
    """`inner` (the answer with the bytes of `blobs`, each with its stat), sent only with a
    slot if it is big, only if every blob still hashes to its name, and cut off (the slot
    freed) if the node stops taking it."""

    def __init__(
        self, inner: Response, guard: BlobGuard, blobs: list[tuple[str, os.stat_result]]
    ) -> None:
        # Not Response.__init__: the inner response renders itself.
        self.inner = inner
        self.guard = guard
        self.blobs = blobs
        self.status_code = inner.status_code
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        size = sum(found.st_size for _, found in self.blobs)
        transfer = scope["method"] != "HEAD" and size >= self.guard.transfer_bytes
        if transfer:
            retry = self.guard.admission.enter()
            if retry is not None:
                await deferred(retry, self.guard.admission.limit)(scope, receive, send)
                return
        started = time.monotonic()
        try:
            try:
                for digest, found in self.blobs:
                    await self.guard.verifier.check(digest, found)
            except BlobCorrupt as err:  # raised after the route returned: answered here
                await error_answer(err)(scope, receive, send)
                return
            await self.inner(scope, receive, paced(scope, send, self.guard.stall))
        except Stalled as err:
            self.guard.cut_off += 1
            scope[CUT_OFF] = f"cut off: {err}"
            client = scope.get("client") or ("?", 0)
            log.warning("%s:%s cut off from %s: %s", *client[:2], scope["path"], err)
            # The connection is aborted: let the server hear of it (connection_lost runs
            # next) before this answer returns unfinished, so it does not report an error.
            await asyncio.sleep(0)
        finally:
            if transfer:
                self.guard.admission.leave(time.monotonic() - started)


def deferred(seconds: int, limit: int) -> Response:
    message = (
        f"bootd is sending {limit} kernels and images at once (its --max-transfers): "
        f"come back in {seconds} s"
    )
    headers = {"retry-after": str(seconds), "cache-control": "no-store"}
    return error_response(503, message, headers=headers)


def guard_of(store: ContentStore) -> BlobGuard | None:
    return store.guard if isinstance(store, ServingStore) else None


def guarded(store: ContentStore, digests: list[str], inner: Response) -> Response:
    """`inner`, which sends the blobs `digests` end to end, guarded if `store` is bootd's."""
    guard = guard_of(store)
    if guard is None:
        return inner
    return GuardedBlob(inner, guard, [(digest, _stat(store, digest)) for digest in digests])


async def verify_stored(store: ContentStore, digests: list[str]) -> None:
    """BlobCorrupt (or NotFound) unless each blob hashes to its name; for answers that read
    blobs themselves. A plain ContentStore is not checked."""
    guard = guard_of(store)
    if guard is None:
        return
    for digest in digests:
        await guard.verifier.check(digest, _stat(store, digest))


def _stat(store: ContentStore, digest: str) -> os.stat_result:
    try:
        return store.path(digest).stat()
    except FileNotFoundError:
        raise NotFound(f"blob {parse_digest(digest)} not in the store", field="digest") from None
