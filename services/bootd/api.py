"""bootd's HTTP surface, every route in one table (Warewulf's, plus blobs, agent reports and
the status API): each one reads the request, asks the BootFront, and answers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import PlainTextResponse

from libs.common import names
from libs.common.http.auth import TokenAuth
from libs.common.http.bodies import BINARY, TEXT, decode_body, encode
from libs.common.http.openapi import body_schema
from libs.common.models.boot_status import NodeBootStatus
from libs.common.nodes.macs import normalize_mac
from services.bootd.front import Asked, BootFront
from services.bootd.guard import ServingCounts
from services.bootd.reports import AgentReport, RuntimePushed

BLOB: Final = (BINARY,)
GET_HEAD: Final = ["GET", "HEAD"]
# Warewulf's per-stage routes, `/kernel/{mac}` ...: `/provision/{mac}?stage=` by another name.
STAGE_ROUTES: Final = ("kernel", "image", "system")


def asked(request: Request) -> Asked:
    return Asked(
        method=request.method,
        path=request.url.path,
        client=request.scope.get("client"),
        host=request.headers.get("host"),
        server=request.scope.get("server"),
        if_none_match=request.headers.get("if-none-match"),
    )


def node_mac(text: str) -> str:
    return normalize_mac(text, field="mac")


def mount(app: FastAPI, front: BootFront, auth: TokenAuth) -> None:
    read = [Depends(auth.require_read)]

    @app.get("/ipxe/{mac}", response_class=PlainTextResponse)
    async def ipxe(request: Request, mac: str, assetkey: str | None = None) -> Response:
        return await front.ipxe(asked(request), node_mac(mac), assetkey)

    @app.api_route(
        "/blobs/sha256/{digest}", methods=GET_HEAD, openapi_extra=body_schema(response_raw=BLOB)
    )
    async def blob(
        request: Request, digest: str, wwid: str | None = None, assetkey: str | None = None
    ) -> Response:
        return front.blob(asked(request), digest, wwid, assetkey)

    @app.api_route(
        "/runtime/{mac}",
        methods=GET_HEAD,
        openapi_extra=body_schema(response=RuntimePushed, response_raw=BLOB),
    )
    async def runtime_route(
        request: Request, mac: str, assetkey: str | None = None, callback: str | None = None
    ) -> Response:
        return await front.runtime(asked(request), node_mac(mac), assetkey, callback)

    for stage in STAGE_ROUTES:
        app.api_route(
            f"/{stage}/{{mac}}",
            methods=GET_HEAD,
            name=f"{stage}_alias",
            openapi_extra=body_schema(response_raw=BLOB),
        )(_stage_route(front, stage))

    @app.api_route(
        "/provision/{mac}", methods=GET_HEAD, openapi_extra=body_schema(response_raw=(BINARY, TEXT))
    )
    async def provision(
        request: Request, mac: str, stage: str = "ipxe", assetkey: str | None = None
    ) -> Response:
        return await front.stage_file(asked(request), node_mac(mac), stage, assetkey)

    @app.post("/status/{mac}", status_code=204, openapi_extra=body_schema(request=AgentReport))
    async def agent_status(request: Request, mac: str, assetkey: str | None = None) -> Response:
        hwaddr = node_mac(mac)
        report = await decode_body(request, AgentReport)
        await front.agent_report(asked(request), hwaddr, report, assetkey)
        return Response(status_code=204)

    @app.get(
        f"{names.API_PREFIX}/status",
        dependencies=read,
        openapi_extra=body_schema(response=list[NodeBootStatus]),
    )
    async def status() -> Response:
        return encode(front.status())

    @app.get(
        f"{names.API_PREFIX}/serving",
        dependencies=read,
        openapi_extra=body_schema(response=ServingCounts),
    )
    async def serving() -> Response:
        return encode(front.serving())


StageRoute = Callable[[Request, str, str | None], Awaitable[Response]]


def _stage_route(front: BootFront, stage: str) -> StageRoute:
    async def route(request: Request, mac: str, assetkey: str | None = None) -> Response:
        return await front.stage_file(asked(request), node_mac(mac), stage, assetkey)

    return route
