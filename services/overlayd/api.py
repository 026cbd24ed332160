"""overlayd HTTP routes (base /api/v1): decode, call the catalog or the waves, encode."""

from __future__ import annotations

import msgspec
from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, Response

from libs.common import names
from libs.common.errors import NotFound
from libs.common.http.app import Credentials, TokenAuth, body_schema, decode_body, encode
from libs.common.http.revisions import etag, if_match_revision
from libs.common.models.overlay import BootManifest, OverlayMeta
from libs.common.models.overlay_api import (
    ChmodRequest,
    MkdirRequest,
    OverlayCreate,
    OverlaydStatus,
    OverlaySummary,
    RenderedFile,
    WaveReport,
)
from libs.common.nodes import ranges
from libs.common.security.redact import MASK
from services.overlayd.catalog import Catalog, summary_of
from services.overlayd.incremental import Waves
from services.overlayd.manifests import Manifests

BINARY = "application/octet-stream"
ONE = "/overlays/{name}"
FILE = "/overlays/{name}/files/{path:path}"
MANIFEST = "/nodes/{name}/manifest"


def _changed(meta: OverlayMeta, status: int = 200) -> Response:
    return encode(summary_of(meta), status=status, headers={"ETag": etag(meta.revision)})


def overlay_routes(catalog: Catalog, waves: Waves, auth: TokenAuth) -> APIRouter:
    r = APIRouter(prefix=names.API_PREFIX, tags=["overlays"])
    read, write = [Depends(auth.require_read)], [Depends(auth.require_write)]
    # What an overlay holds, rendered for a node or as stored, may be a secret (host keys,
    # the node's asset key, a site's munge key): the token always, even with public reads.
    contents = write

    @r.get("/overlays", dependencies=read, openapi_extra=body_schema(response=list[OverlaySummary]))
    async def list_overlays(files: bool = False) -> Response:
        return encode(await catalog.listing(files=files))

    @r.post(
        "/overlays",
        dependencies=write,
        status_code=201,
        openapi_extra=body_schema(request=OverlayCreate, response=OverlaySummary, status=201),
    )
    async def create_overlay(request: Request) -> Response:
        body = await decode_body(request, OverlayCreate)
        return _changed(await catalog.create(body.name, empty=body.empty), 201)

    @r.post("/overlays:build", dependencies=write, openapi_extra=body_schema(response=WaveReport))
    async def build(nodes: str | None = Query(None, description="hostlist range")) -> Response:
        if nodes is None:
            return encode(await waves.build(None))
        wanted = ranges.expand_names(nodes, field="nodes")
        missing = [name for name in wanted if name not in waves.view.nodes.items]
        if missing:
            raise NotFound(f"no such nodes: {', '.join(missing[:10])}", field="nodes")
        return encode(await waves.build(wanted))

    @r.get(
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
            return encode(await catalog.rendered(name, render))
        return encode(await catalog.show(name))

    @r.delete(ONE, dependencies=write, status_code=204)
    async def delete_overlay(name: str, if_match: str | None = Header(None)) -> Response:
        await catalog.storage.delete(name, revision=if_match_revision(if_match))
        return Response(status_code=204)

    @r.get(FILE, dependencies=contents, openapi_extra=body_schema(response_raw=(BINARY,)))
    async def get_file(name: str, path: str, render: str | None = None) -> Response:
        if render is not None:
            found = await catalog.rendered_file(name, render, path)
            return Response(found.data or b"", media_type=BINARY)
        data, revision = await catalog.read(name, path)
        headers = {"ETag": etag(revision)} if revision is not None else None
        return Response(data, media_type=BINARY, headers=headers)

    @r.put(
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
        meta = await catalog.storage.put_file(
            name,
            path,
            await request.body(),
            mode=mode,
            uid=uid,
            gid=gid,
            revision=if_match_revision(if_match),
        )
        return _changed(meta)

    @r.delete(FILE, dependencies=write, openapi_extra=body_schema(response=OverlaySummary))
    async def delete_file(
        name: str, path: str, recursive: bool = False, if_match: str | None = Header(None)
    ) -> Response:
        meta = await catalog.delete_files(
            name, [path], recursive=recursive, revision=if_match_revision(if_match)
        )
        return _changed(meta)

    @r.post(
        f"{ONE}/mkdir",
        dependencies=write,
        openapi_extra=body_schema(request=MkdirRequest, response=OverlaySummary),
    )
    async def mkdir(name: str, request: Request, if_match: str | None = Header(None)) -> Response:
        body = await decode_body(request, MkdirRequest)
        meta = await catalog.storage.mkdir(
            name,
            body.path,
            mode=body.mode,
            uid=body.uid,
            gid=body.gid,
            revision=if_match_revision(if_match),
        )
        return _changed(meta)

    @r.post(
        f"{ONE}/chmod",
        dependencies=write,
        openapi_extra=body_schema(request=ChmodRequest, response=OverlaySummary),
    )
    async def chmod(name: str, request: Request, if_match: str | None = Header(None)) -> Response:
        body = await decode_body(request, ChmodRequest)
        meta = await catalog.storage.chmod(
            name, body.path, body.mode, revision=if_match_revision(if_match)
        )
        return _changed(meta)

    @r.post(
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
        meta = await catalog.import_archive(
            name, await request.body(), dest=dest, revision=if_match_revision(if_match)
        )
        return _changed(meta)

    return r


def node_routes(manifests: Manifests, waves: Waves, auth: TokenAuth) -> APIRouter:
    r = APIRouter(prefix=names.API_PREFIX, tags=["nodes"])
    read = [Depends(auth.require_read)]

    @r.get(
        "/nodes/{name}/manifest",
        dependencies=read,
        openapi_extra=body_schema(response=BootManifest),
    )
    async def manifest(name: str) -> Response:
        found = manifests.get(name)
        if found.asset_key is not None:  # bootd alone compares it; nobody reads it here
            found = msgspec.structs.replace(found, asset_key=MASK)
        return encode(found, headers={"ETag": etag(found.revision)})

    @r.get("/status", dependencies=read, openapi_extra=body_schema(response=OverlaydStatus))
    async def status() -> Response:
        return encode(waves.status())

    return r


def mount(
    app: FastAPI, catalog: Catalog, waves: Waves, manifests: Manifests, auth: TokenAuth
) -> None:
    app.include_router(overlay_routes(catalog, waves, auth))
    app.include_router(node_routes(manifests, waves, auth))
