"""overlayd's HTTP surface (base /api/v1), every route in one table: decode, call the
OverlaydFront, encode."""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, Response

from libs.common import names
from libs.common.http.auth import Credentials, TokenAuth
from libs.common.http.bodies import BINARY, decode_body, encode
from libs.common.http.openapi import body_schema
from libs.common.http.revisions import etag, if_match_revision
from libs.common.models.overlay import BootManifest
from libs.common.models.overlay_api import (
    ChmodRequest,
    MkdirRequest,
    OverlayCreate,
    OverlaydStatus,
    OverlaySummary,
    RenderedFile,
    WaveReport,
)
from services.overlayd.front import OverlaydFront

ONE = "/overlays/{name}"
FILE = "/overlays/{name}/files/{path:path}"
MANIFEST = "/nodes/{name}/manifest"


def _changed(summary: OverlaySummary, status: int = 200) -> Response:
    # A summary answering a write always has the revision it was written at.
    headers = {"ETag": etag(summary.revision)} if summary.revision is not None else None
    return encode(summary, status=status, headers=headers)


def routes(front: OverlaydFront, auth: TokenAuth) -> list[APIRouter]:
    overlays_api = APIRouter(prefix=names.API_PREFIX, tags=["overlays"])
    nodes_api = APIRouter(prefix=names.API_PREFIX, tags=["nodes"])
    read, write = [Depends(auth.require_read)], [Depends(auth.require_write)]
    # What an overlay holds, rendered for a node or as stored, may be a secret (host keys,
    # the node's asset key, a site's munge key): the token always, even with public reads.
    contents = write

    @overlays_api.get(
        "/overlays",
        dependencies=read,
        openapi_extra=body_schema(response=list[OverlaySummary]),
    )
    async def list_overlays(files: bool = False) -> Response:
        return encode(await front.listing(files=files))

    @overlays_api.post(
        "/overlays",
        dependencies=write,
        status_code=201,
        openapi_extra=body_schema(request=OverlayCreate, response=OverlaySummary, status=201),
    )
    async def create_overlay(request: Request) -> Response:
        body = await decode_body(request, OverlayCreate)
        return _changed(await front.create(body.name, empty=body.empty), 201)

    @overlays_api.post(
        "/overlays:build",
        dependencies=write,
        openapi_extra=body_schema(response=WaveReport),
    )
    async def build(nodes: str | None = Query(None, description="hostlist range")) -> Response:
        return encode(await front.build(nodes))

    @overlays_api.get(
        ONE,
        dependencies=read,
        openapi_extra=body_schema(response=OverlaySummary | list[RenderedFile]),
    )
    async def show_overlay(
        credentials: Credentials,
        name: str,
        render: str | None = Query(None, description="node to render it for (needs the token)"),
    ) -> Response:
        if render is not None:
            await auth.require_write(credentials)
        return encode(await front.overlay(name, render))

    @overlays_api.delete(ONE, dependencies=write, status_code=204)
    async def delete_overlay(name: str, if_match: str | None = Header(None)) -> Response:
        await front.delete(name, revision=if_match_revision(if_match))
        return Response(status_code=204)

    @overlays_api.get(
        FILE,
        dependencies=contents,
        openapi_extra=body_schema(response_raw=(BINARY,)),
    )
    async def get_file(name: str, path: str, render: str | None = None) -> Response:
        data, revision = await front.file(name, path, render)
        headers = {"ETag": etag(revision)} if revision is not None else None
        return Response(data, media_type=BINARY, headers=headers)

    @overlays_api.put(
        FILE,
        dependencies=write,
        openapi_extra=body_schema(request_raw=BINARY, response=OverlaySummary),
    )
    async def put_file(
        name: str,
        path: str,
        request: Request,
        mode: str | None = None,
        uid: int | None = None,
        gid: int | None = None,
        if_match: str | None = Header(None),
    ) -> Response:
        data = await request.body()
        return _changed(
            await front.put_file(
                name, path, data, mode=mode, uid=uid, gid=gid, revision=if_match_revision(if_match)
            )
        )

    @overlays_api.delete(
        FILE,
        dependencies=write,
        openapi_extra=body_schema(response=OverlaySummary),
    )
    async def delete_file(
        name: str, path: str, recursive: bool = False, if_match: str | None = Header(None)
    ) -> Response:
        revision = if_match_revision(if_match)
        return _changed(await front.delete_file(name, path, recursive=recursive, revision=revision))

    @overlays_api.post(
        f"{ONE}/mkdir",
        dependencies=write,
        openapi_extra=body_schema(request=MkdirRequest, response=OverlaySummary),
    )
    async def mkdir(name: str, request: Request, if_match: str | None = Header(None)) -> Response:
        body = await decode_body(request, MkdirRequest)
        return _changed(await front.mkdir(name, body, revision=if_match_revision(if_match)))

    @overlays_api.post(
        f"{ONE}/chmod",
        dependencies=write,
        openapi_extra=body_schema(request=ChmodRequest, response=OverlaySummary),
    )
    async def chmod(name: str, request: Request, if_match: str | None = Header(None)) -> Response:
        body = await decode_body(request, ChmodRequest)
        return _changed(await front.chmod(name, body, revision=if_match_revision(if_match)))

    @overlays_api.post(
        f"{ONE}/import",
        dependencies=write,
        openapi_extra=body_schema(request_raw=BINARY, response=OverlaySummary),
    )
    async def import_tree(
        name: str,
        request: Request,
        dest: str = Query("", description="folder in the overlay to import below"),
        if_match: str | None = Header(None),
    ) -> Response:
        """The body is a tar archive (any compression) of the tree to import."""
        archive = await request.body()
        return _changed(
            await front.import_tree(name, archive, dest=dest, revision=if_match_revision(if_match))
        )

    @nodes_api.get(MANIFEST, dependencies=read, openapi_extra=body_schema(response=BootManifest))
    async def manifest(name: str) -> Response:
        found = front.manifest(name)
        return encode(found, headers={"ETag": etag(found.revision)})

    @nodes_api.get("/status", dependencies=read, openapi_extra=body_schema(response=OverlaydStatus))
    async def status() -> Response:
        return encode(front.status())

    return [overlays_api, nodes_api]


def mount(app: FastAPI, front: OverlaydFront, auth: TokenAuth) -> None:
    for router in routes(front, auth):
        app.include_router(router)
