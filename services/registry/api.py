"""Registry HTTP routes (DESIGN.md "Registry HTTP API"): decode, call the registry, encode."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import GenericAlias
from typing import Any, Generic, TypeVar

import msgspec
from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, Response

from libs.common import names
from libs.common.errors import Invalid
from libs.common.events import asyncapi
from libs.common.http.auth import Credentials, TokenAuth
from libs.common.http.bodies import decode_body, encode
from libs.common.http.openapi import body_schema
from libs.common.http.revisions import etag, if_match_revision
from libs.common.models.api import BulkAdd, BulkResult, ImportResult, MergedNode, MergedProfile
from libs.common.models.node import Node, Profile
from libs.common.nodes import ranges
from libs.common.security.redact import Secrets
from services.registry.registry import Registry

YAML = "application/yaml"
T = TypeVar("T", Node, Profile)


def _create_only(if_none_match: str | None) -> bool:
    if if_none_match is None:
        return False
    if if_none_match.strip() != "*":
        raise Invalid("only `If-None-Match: *` (create only) is supported", field="If-None-Match")
    return True


def _stored(obj: Node | Profile, status: int = 200) -> Response:
    return encode(obj, status=status, headers={"ETag": etag(obj.revision)})


SECRETS_HELP = "show secrets (IPMI password, asset key) instead of a mask; needs the token"


def secrets_wanted(auth: TokenAuth) -> Callable[..., Awaitable[bool]]:
    """A dependency: `?secrets=true` asked (and the token checked, even with public reads)."""

    async def wanted(
        credentials: Credentials, secrets: bool = Query(False, description=SECRETS_HELP)
    ) -> bool:
        if secrets:
            await auth.require_write(credentials)
        return secrets

    return wanted


def _patch_body(raw: bytes) -> dict[str, Any]:
    try:
        doc = msgspec.json.decode(raw)
    except msgspec.DecodeError as e:
        raise Invalid(f"malformed JSON: {e}") from None
    if not isinstance(doc, dict):
        raise Invalid("a patch must be a JSON object")
    return doc


@dataclass(frozen=True)
class Kind(Generic[T]):
    """What the routes of one stored kind (nodes, profiles) call; both share every route."""

    plural: str
    model: type[T]
    merged_model: type[Any]
    existing: Mapping[str, T]
    listing: Callable[[list[str] | None], list[T]]
    get: Callable[[str], T]
    merged: Callable[[str], Any]
    put: Callable[..., Awaitable[T]]
    patch: Callable[..., Awaitable[T]]
    delete: Callable[..., Awaitable[None]]
    secrets: Secrets[Any]
    merged_secrets: Secrets[Any]


def kinds(registry: Registry) -> tuple[Kind[Node], Kind[Profile]]:
    nodes = Kind(
        "nodes", Node, MergedNode, registry.nodes.items, registry.list_nodes,
        registry.nodes.get, registry.merged_node, registry.put_node, registry.patch_node,
        registry.delete_node, registry.node_secrets, Secrets(MergedNode),
    )  # fmt: skip
    profiles = Kind(
        "profiles", Profile, MergedProfile, registry.profiles.items, registry.list_profiles,
        registry.profiles.get, registry.merged_profile, registry.put_profile,
        registry.patch_profile, registry.delete_profile, registry.profile_secrets,
        Secrets(MergedProfile),
    )  # fmt: skip
    return nodes, profiles


def object_routes(kind: Kind[Any], auth: TokenAuth) -> APIRouter:
    """List, get (stored or merged with provenance), put, patch and delete of one kind.
    Every answer masks secrets but a read asking `?secrets=true` with the token."""
    r = APIRouter(prefix=names.API_PREFIX, tags=[kind.plural])
    read, write = [Depends(auth.require_read)], [Depends(auth.require_write)]
    reveal = Depends(secrets_wanted(auth))
    one = f"/{kind.plural}/{{name}}"

    def shown(obj: Any, secrets: bool = False) -> Any:
        return obj if secrets else kind.secrets.mask(obj)

    def shown_merged(obj: Any, secrets: bool) -> Any:
        return obj if secrets else kind.merged_secrets.mask(obj)

    listed = GenericAlias(list, (kind.model,)) | GenericAlias(list, (kind.merged_model,))

    @r.get(f"/{kind.plural}", dependencies=read, openapi_extra=body_schema(response=listed))
    async def list_objects(
        merged: bool = False,
        names_: str | None = Query(None, alias="names", description="hostlist range"),
        secrets: bool = reveal,
    ) -> Response:
        objects = kind.listing(ranges.expand_names(names_) if names_ else None)
        if merged:
            return encode([shown_merged(kind.merged(o.name), secrets) for o in objects])
        return encode([shown(o, secrets) for o in objects])

    @r.get(
        one, dependencies=read, openapi_extra=body_schema(response=kind.model | kind.merged_model)
    )
    async def get_object(name: str, merged: bool = False, secrets: bool = reveal) -> Response:
        if merged:
            return encode(shown_merged(kind.merged(name), secrets))
        return _stored(shown(kind.get(name), secrets))

    @r.put(
        one,
        dependencies=write,
        openapi_extra=body_schema(request=kind.model, response=kind.model, status=(200, 201)),
    )
    async def put_object(
        name: str,
        request: Request,
        if_match: str | None = Header(None),
        if_none_match: str | None = Header(None),
    ) -> Response:
        obj = await decode_body(request, kind.model)
        existed = name in kind.existing
        stored = await kind.put(
            name, obj, if_match=if_match_revision(if_match), create_only=_create_only(if_none_match)
        )
        return _stored(shown(stored), 200 if existed else 201)

    @r.patch(
        one,
        dependencies=write,
        openapi_extra=body_schema(request=dict[str, Any], response=kind.model),
    )
    async def patch_object(
        name: str, request: Request, if_match: str | None = Header(None)
    ) -> Response:
        patch = _patch_body(await request.body())
        return _stored(shown(await kind.patch(name, patch, if_match=if_match_revision(if_match))))

    @r.delete(one, dependencies=write, status_code=204)
    async def delete_object(name: str, if_match: str | None = Header(None)) -> Response:
        await kind.delete(name, if_match=if_match_revision(if_match))
        return Response(status_code=204)

    return r


def bulk_routes(registry: Registry, auth: TokenAuth) -> APIRouter:
    r = APIRouter(prefix=names.API_PREFIX, tags=["nodes"])

    @r.post(
        "/nodes:bulk",
        dependencies=[Depends(auth.require_write)],
        openapi_extra=body_schema(request=BulkAdd, response=BulkResult, status=201),
    )
    async def bulk_add(request: Request) -> Response:
        bulk = await decode_body(request, BulkAdd)
        return encode(await registry.bulk_add(bulk), status=201)

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

    @r.get(
        "/export",
        dependencies=[Depends(auth.require_read)],
        openapi_extra=body_schema(response_raw=(YAML,)),
    )
    async def export_conf(secrets: bool = Depends(secrets_wanted(auth))) -> Response:
        return Response(registry.export_conf(secrets=secrets), media_type=YAML)

    return r


def events_routes() -> APIRouter:
    """`GET /asyncapi.json`: every NATS subject and its payload, beside `/openapi.json` and,
    like it, readable without a token."""
    r = APIRouter(tags=["events"])
    described = msgspec.json.encode(asyncapi.document())

    @r.get("/asyncapi.json", openapi_extra=body_schema(response=dict[str, Any]))
    async def asyncapi_json() -> Response:
        return Response(described, media_type="application/json")

    return r


def mount(app: FastAPI, registry: Registry, auth: TokenAuth) -> None:
    # The bulk route goes first: `/nodes:bulk` must not be taken for a node name.
    app.include_router(bulk_routes(registry, auth))
    for kind in kinds(registry):
        app.include_router(object_routes(kind, auth))
    app.include_router(conf_routes(registry, auth))
    app.include_router(events_routes())
