"""What bootd's routes call: one method per route, each answering from the BootServer and
recording the answer as the node's boot stage once it is sent (or refused).

The routes (services/bootd/api.py) only read the request into `Asked` and its parameters;
typed errors raised here become statuses in libs.common.http.errors.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Final

from fastapi import Response
from fastapi.responses import PlainTextResponse

from libs.common.errors import Forbidden, Invalid, Unauthorized, WolfpackError
from libs.common.http.bodies import encode, error_response
from libs.common.http.errors import status_of
from libs.common.models.boot_stage import UNKNOWN_NODE, Stage
from libs.common.models.boot_status import NodeBootStatus
from services.bootd.blobs import blob_response, concatenated
from services.bootd.boot import BootServer
from services.bootd.callback import callback_port, push
from services.bootd.counted import Counted
from services.bootd.guard import BlobGuard, ServingCounts, guarded, verify_stored
from services.bootd.reports import AgentReport, RuntimePushed
from services.bootd.status import StatusBook

IPXE: Final = "text/plain; charset=utf-8"
# What a Host header may be: a name or IPv4 address, or an IPv6 one in brackets, and a port.
# It goes into the iPXE script, so nothing else may.
HOST: Final = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?")


@dataclass(frozen=True)
class Asked:
    """What an answer needs of the request besides its parameters."""

    method: str
    path: str
    # The node's address and source port (None when the server does not say).
    client: tuple[str, int] | None
    host: str | None  # the Host header
    server: tuple[str, int] | None  # the address the request came in on
    if_none_match: str | None

    @property
    def remote(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else ""

    @property
    def port(self) -> int | None:
        return int(self.client[1]) if self.client else None

    def base_url(self) -> str:
        """The address the node used to reach us, so the script works on any interface."""
        host = self.host
        if host and not HOST.fullmatch(host):
            raise Invalid(f"Host header {host[:80]!r} is not a host name or address", field="Host")
        if not host:
            server = self.server or ("127.0.0.1", 9873)
            host = f"{server[0]}:{server[1]}"
        return f"http://{host}"


class BootFront:
    def __init__(self, boot: BootServer, book: StatusBook, guard: BlobGuard) -> None:
        self.boot = boot
        self.book = book
        self.guard = guard

    async def ipxe(self, asked: Asked, mac: str, assetkey: str | None) -> Response:
        """The node's iPXE script (discovering it if need be)."""
        started = time.monotonic()
        try:
            text, node = await self.boot.script(mac, asked.base_url(), assetkey)
        except WolfpackError as err:
            await self._record(asked, UNKNOWN_NODE, "ipxe", mac, error=err.message)
            raise
        await self._record(asked, node, "ipxe", mac, sent=len(text), started=started)
        return PlainTextResponse(text, media_type=IPXE)

    def blob(self, asked: Asked, digest: str, wwid: str | None, assetkey: str | None) -> Response:
        """A blob on the allow-list (BootServer.blob_owner), a stage of the node that asked."""
        owner = self.boot.blob_owner(wwid, digest, assetkey)  # 404 if not on it
        response = blob_response(self.boot.store, digest, asked.if_none_match)
        if owner is None:
            return response
        return self._counted(response, asked, owner[0], owner[1], wwid or "")

    async def stage_file(
        self, asked: Asked, mac: str, stage: str, assetkey: str | None
    ) -> Response:
        """Warewulf's `/provision/<mac>?stage=` and its `/kernel`, `/image`, `/system` routes."""
        if stage == "ipxe":
            return await self.ipxe(asked, mac, assetkey)
        if stage == "runtime":
            return await self.runtime(asked, mac, assetkey)
        kind: Stage = "kernel" if stage == "kernel" else "image" if stage == "image" else "system"
        try:
            manifest = self.boot.manifest(mac, assetkey)
        except (Unauthorized, Forbidden) as err:
            return await self._refused(asked, mac, self.boot.owner(mac), kind, err)
        digests = self.boot.stage_digests(manifest, stage)
        if len(digests) == 1:
            inner = blob_response(self.boot.store, digests[0], asked.if_none_match)
        else:
            sent = concatenated(self.boot.store, digests, asked.method == "HEAD")
            inner = guarded(self.boot.store, digests, sent)
        return self._counted(inner, asked, manifest.node, kind, mac)

    async def runtime(
        self, asked: Asked, mac: str, assetkey: str | None, callback: str | None = None
    ) -> Response:
        """The runtime overlay, to its node only (services.bootd.access); with `?callback=`
        pushed to the port the node listens on (services.bootd.callback)."""
        node = self.boot.owner(mac)
        listening = None
        if callback is not None:
            if asked.method != "GET":
                raise Invalid("?callback= pushes the overlay: it needs GET", field="callback")
            listening = callback_port(callback)  # the port the node listens on proves root
        port = asked.port if listening is None else listening
        try:
            manifest = self.boot.runtime_manifest(mac, assetkey, port)
        except WolfpackError as err:
            return await self._refused(asked, mac, node, "runtime", err)
        (digest,) = self.boot.stage_digests(manifest, "runtime")
        if listening is None:
            inner = blob_response(self.boot.store, digest, asked.if_none_match)
            return self._counted(inner, asked, node, "runtime", mac)
        return await self._push(asked, mac, node, digest, listening)

    async def agent_report(
        self, asked: Asked, mac: str, report: AgentReport, assetkey: str | None
    ) -> None:
        """What the node agent did, as a stage of its node."""
        manifest = self.boot.manifest(mac, assetkey)
        failed = report.message in ("failed", "error")
        await self.boot.record(
            manifest.node,
            "agent",
            f"{report.stage} {report.message} {report.runtime_digest}",
            remote=asked.remote,
            hwaddr=mac,
            error=report.message if failed else "",
        )

    def status(self) -> list[NodeBootStatus]:
        return self.book.snapshot()

    def serving(self) -> ServingCounts:
        return self.guard.counts()

    async def _push(self, asked: Asked, mac: str, node: str, digest: str, port: int) -> Response:
        started = time.monotonic()
        assert asked.client is not None  # uvicorn names the client of every TCP request
        host = asked.client[0]
        file = f"{asked.path}?callback={port}"
        try:
            await verify_stored(self.boot.store, [digest])
            sent = await push(host, port, self.boot.store.path(digest))
        except WolfpackError as err:
            await self._record(asked, node, "runtime", mac, file=file, error=err.message)
            raise
        await self._record(asked, node, "runtime", mac, file=file, sent=sent, started=started)
        return encode(RuntimePushed(digest=digest, size=sent))

    def _counted(
        self, response: Response, asked: Asked, node: str, stage: Stage, mac: str
    ) -> Response:
        """`response`, recorded as `stage` of `node` once it is sent or cut off."""
        started = time.monotonic()

        async def finished(status: int, sent: int, cut_off: str) -> None:
            error = cut_off or ("" if status < 400 else f"HTTP {status}")
            await self._record(asked, node, stage, mac, sent=sent, started=started, error=error)

        return Counted(response, finished)

    async def _refused(
        self, asked: Asked, mac: str, node: str, stage: Stage, err: WolfpackError
    ) -> Response:
        """The refusal of a node's file (its asset key, its source port), as a stage. Answered
        here, not raised, as it always was: without the bearer challenge of a raised 401."""
        await self._record(asked, node, stage, mac, error=err.message)
        return error_response(status_of(err), err.message, err.field)

    async def _record(
        self,
        asked: Asked,
        node: str,
        stage: Stage,
        mac: str,
        *,
        file: str | None = None,
        sent: int = 0,
        started: float | None = None,
        error: str = "",
    ) -> None:
        await self.boot.record(
            node,
            stage,
            asked.path if file is None else file,
            remote=asked.remote,
            hwaddr=mac,
            sent=sent,
            started=started,
            error=error,
        )
