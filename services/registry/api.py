"""Registry HTTP routes (DESIGN.md "Registry HTTP API"): decode, call the registry, encode."""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, Response

from libs.common import names, ranges
from libs.common.errors import Invalid
from libs.common.httpapi import TokenAuth, body_schema, decode_body, encode
from libs.common.models.api import BulkAdd, BulkResult, ImportResult, MergedNode, MergedProfile
from libs.common.models.node import Node, Profile
from services.registry.registry import Registry

YAML = "application/yaml"


def _revision(if_match: str | None) -> int | None:
    if if_match is None:
        return None
    value = if_match.strip().removeprefix("W/").strip('"')
    if not value.isdigit():
        raise Invalid(f"If-Match must be a revision number, got {if_match!r}", field="If-Match")
    return int(value)


def _create_only(if_none_match: str | None) -> bool:
    if if_none_match is None:
        return False
    if if_none_match.strip() != "*":
        raise Invalid("only `If-None-Match: *` (create only) is supported", field="If-None-Match")
    return True


def _stored(obj: Node | Profile, status: int = 200) -> Response:
    return encode(obj, status=status, headers={"ETag": f'"{obj.revision}"'})


def _patch_body(raw: bytes) -> dict[str, Any]:
    try:
        doc = msgspec.json.decode(raw)
    except msgspec.DecodeError as e:
        raise Invalid(f"malformed JSON: {e}") from None
    if not isinstance(doc, dict):
        raise Invalid("a patch must be a JSON object")
    return doc


def node_routes(registry: Registry, auth: TokenAuth) -> APIRouter:
    r = APIRouter(prefix=names.API_PREFIX, tags=["nodes"])
    read, write = [Depends(auth.require_read)], [Depends(auth.require_write)]

    @r.get("/nodes", dependencies=read, openapi_extra=body_schema(response=list[Node]))
    async def list_nodes(
        merged: bool = False,
        names_: str | None = Query(None, alias="names", description="hostlist range"),
    ) -> Response:
        selected = ranges.expand_names(names_) if names_ else None
        nodes = registry.list_nodes(selected)
        if merged:
            return encode([registry.merged_node(n.name) for n in nodes])
        return encode(nodes)

    @r.post(
        "/nodes:bulk",
        dependencies=write,
        openapi_extra=body_schema(request=BulkAdd, response=BulkResult),
    )
    async def bulk_add(request: Request) -> Response:
        bulk = await decode_body(request, BulkAdd)
        return encode(await registry.bulk_add(bulk), status=201)

    @r.get(
        "/nodes/{name}", dependencies=read, openapi_extra=body_schema(response=Node | MergedNode)
    )
    async def get_node(name: str, merged: bool = False) -> Response:
        if merged:
            return encode(registry.merged_node(name))
        return _stored(registry.nodes.get(name))

    @r.put(
        "/nodes/{name}", dependencies=write, openapi_extra=body_schema(request=Node, response=Node)
    )
    async def put_node(
        name: str,
        request: Request,
        if_match: str | None = Header(None),
        if_none_match: str | None = Header(None),
    ) -> Response:
        node = await decode_body(request, Node)
        existed = name in registry.nodes.items
        stored = await registry.put_node(
            name, node, if_match=_revision(if_match), create_only=_create_only(if_none_match)
        )
        return _stored(stored, 200 if existed else 201)

    @r.patch(
        "/nodes/{name}",
        dependencies=write,
        openapi_extra=body_schema(request=dict[str, Any], response=Node),
    )
    async def patch_node(
        name: str, request: Request, if_match: str | None = Header(None)
    ) -> Response:
        patch = _patch_body(await request.body())
        return _stored(await registry.patch_node(name, patch, if_match=_revision(if_match)))

    @r.delete("/nodes/{name}", dependencies=write, status_code=204)
    async def delete_node(name: str, if_match: str | None = Header(None)) -> Response:
        await registry.delete_node(name, if_match=_revision(if_match))
        return Response(status_code=204)

    return r


def profile_routes(registry: Registry, auth: TokenAuth) -> APIRouter:
    r = APIRouter(prefix=names.API_PREFIX, tags=["profiles"])
    read, write = [Depends(auth.require_read)], [Depends(auth.require_write)]

    @r.get("/profiles", dependencies=read, openapi_extra=body_schema(response=list[Profile]))
    async def list_profiles(merged: bool = False) -> Response:
        profiles = registry.list_profiles()
        if merged:
            return encode([registry.merged_profile(p.name) for p in profiles])
        return encode(profiles)

    @r.get(
        "/profiles/{name}",
        dependencies=read,
        openapi_extra=body_schema(response=Profile | MergedProfile),
    )
    async def get_profile(name: str, merged: bool = False) -> Response:
        if merged:
            return encode(registry.merged_profile(name))
        return _stored(registry.profiles.get(name))

    @r.put(
        "/profiles/{name}",
        dependencies=write,
        openapi_extra=body_schema(request=Profile, response=Profile),
    )
    async def put_profile(
        name: str,
        request: Request,
        if_match: str | None = Header(None),
        if_none_match: str | None = Header(None),
    ) -> Response:
        profile = await decode_body(request, Profile)
        existed = name in registry.profiles.items
        stored = await registry.put_profile(
            name, profile, if_match=_revision(if_match), create_only=_create_only(if_none_match)
        )
        return _stored(stored, 200 if existed else 201)

    @r.patch(
        "/profiles/{name}",
        dependencies=write,
        openapi_extra=body_schema(request=dict[str, Any], response=Profile),
    )
    async def patch_profile(
        name: str, request: Request, if_match: str | None = Header(None)
    ) -> Response:
        patch = _patch_body(await request.body())
        return _stored(await registry.patch_profile(name, patch, if_match=_revision(if_match)))

    @r.delete("/profiles/{name}", dependencies=write, status_code=204)
    async def delete_profile(name: str, if_match: str | None = Header(None)) -> Response:
        await registry.delete_profile(name, if_match=_revision(if_match))
        return Response(status_code=204)

    return r


def conf_routes(registry: Registry, auth: TokenAuth) -> APIRouter:
    r = APIRouter(prefix=names.API_PREFIX, tags=["nodes.conf"])

    @r.post(
        "/import",
        dependencies=[Depends(auth.require_write)],
        openapi_extra=body_schema(response=ImportResult, request_yaml=True),
    )
    async def import_conf(request: Request) -> Response:
        raw = await request.body()
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            raise Invalid("nodes.conf must be UTF-8 text") from None
        return encode(await registry.import_conf(text))

    @r.get("/export", dependencies=[Depends(auth.require_read)])
    async def export_conf() -> Response:
        return Response(registry.export_conf(), media_type=YAML)

    return r


def mount(app: FastAPI, registry: Registry, auth: TokenAuth) -> None:
    for router in (node_routes, profile_routes, conf_routes):
        app.include_router(router(registry, auth))
