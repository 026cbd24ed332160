"""bootd's HTTP routes (Warewulf's, plus blobs, agent reports and the status API): each one
decodes, asks the BootServer, and answers; the stage event goes out when the answer is done."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final

from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import PlainTextResponse, StreamingResponse

from libs.common import names
from libs.common.errors import Invalid, Unauthorized, WolfpackError
from libs.common.formats.decoding import decode_json
from libs.common.http.auth import TokenAuth
from libs.common.http.bodies import BINARY, TEXT, encode, error_response
from libs.common.http.openapi import body_schema
from libs.common.models.boot_stage import UNKNOWN_NODE, Stage
from libs.common.models.boot_status import NodeBootStatus
from libs.common.nodes.macs import normalize_mac
from libs.common.store.cas import CHUNK
from services.bootd.access import Forbidden, check_runtime
from services.bootd.blobs import CACHE_CONTROL, MEDIA_TYPE, blob_response
from services.bootd.boot import BootServer
from services.bootd.callback import callback_port, push
from services.bootd.counted import Counted
from services.bootd.guard import guarded, verify_stored
from services.bootd.reports import AgentReport, RuntimePushed
from services.bootd.status import StatusBook

IPXE: Final = "text/plain; charset=utf-8"
BLOB: Final = (BINARY,)
# What a Host header may be: a name or IPv4 address, or an IPv6 one in brackets, and a port.
# It goes into the iPXE script, so nothing else may.
HOST: Final = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?")
GET_HEAD: Final = ["GET", "HEAD"]


def base_url(request: Request) -> str:
    """The address the node used to reach us, so the script works on any interface."""
    host = request.headers.get("host")
    if host and not HOST.fullmatch(host):
        raise Invalid(f"Host header {host[:80]!r} is not a host name or address", field="Host")
    if not host:
        server = request.scope.get("server") or ("127.0.0.1", 9873)
        host = f"{server[0]}:{server[1]}"
    return f"http://{host}"


def remote_of(request: Request) -> tuple[str, int | None]:
    client = request.scope.get("client")
    if not client:
        return "", None
    return f"{client[0]}:{client[1]}", int(client[1])


def mount(app: FastAPI, boot: BootServer, book: StatusBook, auth: TokenAuth) -> None:
    async def script(request: Request, mac_text: str, assetkey: str | None) -> Response:
        started = time.monotonic()
        remote, _ = remote_of(request)
        mac = normalize_mac(mac_text, field="mac")
        try:
            text, node = await boot.script(mac, base_url(request), assetkey)
        except WolfpackError as err:
            await boot.record(
                UNKNOWN_NODE, "ipxe", request.url.path, remote=remote, hwaddr=mac, error=err.message
            )
            raise
        await boot.record(
            node,
            "ipxe",
            request.url.path,
            remote=remote,
            hwaddr=mac,
            sent=len(text),
            started=started,
        )
        return PlainTextResponse(text, media_type=IPXE)

    def counted(
        response: Response, node: str, stage: Stage, request: Request, mac: str = ""
    ) -> Response:
        started = time.monotonic()
        remote, _ = remote_of(request)

        async def finished(status: int, sent: int, cut_off: str) -> None:
            error = cut_off or ("" if status < 400 else f"HTTP {status}")
            await boot.record(
                node,
                stage,
                request.url.path,
                remote=remote,
                hwaddr=mac,
                sent=sent,
                started=started,
                error=error,
            )

        return Counted(response, finished)

    async def refused(
        request: Request, mac: str, node: str, stage: Stage, err: WolfpackError
    ) -> Response:
        remote, _ = remote_of(request)
        await boot.record(
            node, stage, request.url.path, remote=remote, hwaddr=mac, error=err.message
        )
        status = 403 if isinstance(err, Forbidden) else 401
        return error_response(status, err.message, err.field)

    async def runtime(
        request: Request, mac_text: str, assetkey: str | None, callback: str | None = None
    ) -> Response:
        mac = normalize_mac(mac_text, field="mac")
        manifest = boot.index.manifest_for_mac(mac)
        node = manifest.node if manifest is not None else UNKNOWN_NODE
        remote, port = remote_of(request)
        if callback is not None:
            if request.method != "GET":
                raise Invalid("?callback= pushes the overlay: it needs GET", field="callback")
            port = callback_port(callback)  # the port the node listens on proves root instead
        try:
            manifest = check_runtime(
                manifest, mac, assetkey, port, boot.secure, boot.index.known_key
            )
        except WolfpackError as err:
            return await refused(request, mac, node, "runtime", err)
        (digest,) = boot.stage_digests(manifest, "runtime")
        if callback is None:
            inner = blob_response(boot.store, digest, request.headers.get("if-none-match"))
            return counted(inner, node, "runtime", request, mac)
        started = time.monotonic()
        host = request.scope["client"][0]
        file = f"{request.url.path}?callback={port}"
        try:
            await verify_stored(boot.store, [digest])
            sent = await push(host, port or 0, boot.store.path(digest))
        except WolfpackError as err:
            await boot.record(node, "runtime", file, remote=remote, hwaddr=mac, error=err.message)
            raise
        await boot.record(
            node, "runtime", file, remote=remote, hwaddr=mac, sent=sent, started=started
        )
        return encode(RuntimePushed(digest=digest, size=sent))

    async def stage_file(
        request: Request, mac_text: str, stage: str, assetkey: str | None
    ) -> Response:
        if stage == "ipxe":
            return await script(request, mac_text, assetkey)
        if stage == "runtime":
            return await runtime(request, mac_text, assetkey)
        mac = normalize_mac(mac_text, field="mac")
        kind: Stage = "kernel" if stage == "kernel" else "image" if stage == "image" else "system"
        try:
            manifest = boot.manifest(mac, assetkey)
        except (Unauthorized, Forbidden) as err:
            owner = boot.index.by_mac.get(mac, UNKNOWN_NODE)
            return await refused(request, mac, owner, kind, err)
        digests = boot.stage_digests(manifest, stage)
        if len(digests) == 1:
            inner = blob_response(boot.store, digests[0], request.headers.get("if-none-match"))
        else:
            head = request.method == "HEAD"
            inner = guarded(boot.store, digests, concatenated(boot, digests, head))
        return counted(inner, manifest.node, kind, request, mac)

    @app.get("/ipxe/{mac}", response_class=PlainTextResponse)
    async def ipxe(request: Request, mac: str, assetkey: str | None = None) -> Response:
        return await script(request, mac, assetkey)

    @app.api_route(
        "/blobs/sha256/{digest}", methods=GET_HEAD, openapi_extra=body_schema(response_raw=BLOB)
    )
    async def blob(
        request: Request, digest: str, wwid: str | None = None, assetkey: str | None = None
    ) -> Response:
        owner = boot.blob_owner(wwid, digest, assetkey)  # the allow-list: 404 if not on it
        response = blob_response(boot.store, digest, request.headers.get("if-none-match"))
        if owner is None:
            return response
        return counted(response, owner[0], owner[1], request, wwid or "")

    @app.api_route(
        "/runtime/{mac}",
        methods=GET_HEAD,
        openapi_extra=body_schema(response=RuntimePushed, response_raw=BLOB),
    )
    async def runtime_route(
        request: Request, mac: str, assetkey: str | None = None, callback: str | None = None
    ) -> Response:
        return await runtime(request, mac, assetkey, callback)

    for stage in ("kernel", "image", "system"):
        _alias(app, stage, stage_file)

    @app.api_route(
        "/provision/{mac}",
        methods=GET_HEAD,
        openapi_extra=body_schema(response_raw=(BINARY, TEXT)),
    )
    async def provision(
        request: Request, mac: str, stage: str = "ipxe", assetkey: str | None = None
    ) -> Response:
        return await stage_file(request, mac, stage, assetkey)

    @app.post("/status/{mac}", status_code=204, openapi_extra=body_schema(request=AgentReport))
    async def agent_status(request: Request, mac: str, assetkey: str | None = None) -> Response:
        hwaddr = normalize_mac(mac, field="mac")
        report = decode_json(await request.body(), AgentReport)
        manifest = boot.manifest(hwaddr, assetkey)
        remote, _ = remote_of(request)
        failed = report.message in ("failed", "error")
        await boot.record(
            manifest.node,
            "agent",
            f"{report.stage} {report.message} {report.runtime_digest}",
            remote=remote,
            hwaddr=hwaddr,
            error=report.message if failed else "",
        )
        return Response(status_code=204)

    @app.get(
        f"{names.API_PREFIX}/status",
        dependencies=[Depends(auth.require_read)],
        openapi_extra=body_schema(response=list[NodeBootStatus]),
    )
    async def status() -> Response:
        return encode(book.snapshot())


StageHandler = Callable[[Request, str, str, str | None], Awaitable[Response]]


def _alias(app: FastAPI, stage: str, handler: StageHandler) -> None:
    """`/kernel/{mac}`, `/image/{mac}`, `/system/{mac}`: Warewulf's per-stage routes."""

    async def route(request: Request, mac: str, assetkey: str | None = None) -> Response:
        return await handler(request, mac, stage, assetkey)

    app.api_route(
        f"/{stage}/{{mac}}",
        methods=GET_HEAD,
        name=f"{stage}_alias",
        openapi_extra=body_schema(response_raw=BLOB),
    )(route)


def concatenated(boot: BootServer, digests: list[str], head: bool) -> Response:
    """Several system overlay archives end to end (the kernel unpacks them in turn)."""
    sizes = [boot.store.size(d) for d in digests]  # NotFound before anything is sent

    async def chunks() -> AsyncIterator[bytes]:
        if head:
            return
        for digest in digests:
            with boot.store.open(digest) as blob:
                while chunk := await asyncio.to_thread(blob.read, CHUNK):
                    yield chunk

    headers = {"content-length": str(sum(sizes)), "cache-control": CACHE_CONTROL}
    return StreamingResponse(chunks(), headers=headers, media_type=MEDIA_TYPE)
