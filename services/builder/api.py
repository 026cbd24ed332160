"""Builder HTTP routes (base /api/v1): decode, call the images domain, encode."""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI, Request, Response

from libs.common import names
from libs.common.http.auth import TokenAuth
from libs.common.http.bodies import decode_body, encode
from libs.common.http.openapi import body_schema
from libs.common.models.image import (
    ImageDetails,
    ImageJob,
    ImageMeta,
    ImportRequest,
    WebhookAnswer,
)
from services.builder.images import Images
from services.builder.users import ImageUsers
from services.builder.webhook import RegistryWebhook


def _accepted(job: ImageJob) -> Response:
    location = f"{names.API_PREFIX}/images/{job.name}/job"
    return encode(job, status=202, headers={"Location": location})


def image_routes(images: Images, users: ImageUsers, auth: TokenAuth) -> APIRouter:
    r = APIRouter(prefix=names.API_PREFIX, tags=["images"])
    read, write = [Depends(auth.require_read)], [Depends(auth.require_write)]

    @r.get("/images", dependencies=read, openapi_extra=body_schema(response=list[ImageMeta]))
    async def list_images() -> Response:
        return encode(await images.list())

    @r.post(
        "/images",
        dependencies=write,
        status_code=202,
        openapi_extra=body_schema(request=ImportRequest, response=ImageJob, status=202),
    )
    async def import_image(request: Request) -> Response:
        return _accepted(await images.import_image(await decode_body(request, ImportRequest)))

    @r.get("/images/{name}", dependencies=read, openapi_extra=body_schema(response=ImageDetails))
    async def show_image(name: str) -> Response:
        return encode(await images.show(name))

    @r.post(
        "/images/{name}:build",
        dependencies=write,
        status_code=202,
        openapi_extra=body_schema(response=ImageJob, status=202),
    )
    async def build_image(name: str) -> Response:
        return _accepted(await images.build(name))

    @r.delete("/images/{name}", dependencies=write, status_code=204)
    async def delete_image(name: str, force: bool = False) -> Response:
        if not force:  # as wwctl: not while nodes or profiles use it
            await users.refuse_if_used(name)
        await images.delete(name)
        return Response(status_code=204)

    @r.get("/images/{name}/job", dependencies=read, openapi_extra=body_schema(response=ImageJob))
    async def image_job(name: str) -> Response:
        return encode(images.job(name))

    return r


def webhook_routes(webhook: RegistryWebhook, auth: TokenAuth) -> APIRouter:
    r = APIRouter(prefix=names.API_PREFIX, tags=["webhooks"])

    @r.post(
        "/webhooks/registry",
        dependencies=[Depends(auth.require_write)],
        openapi_extra=body_schema(response=WebhookAnswer),
    )
    async def registry_notification(request: Request) -> Response:
        # The CNCF Distribution registry's envelope (its own media type, read whatever the
        # Content-Type says); answered at once, the rebuild runs from the `pushed` event.
        return encode(await webhook.receive(await request.body()))

    return r


def mount(
    app: FastAPI, images: Images, users: ImageUsers, webhook: RegistryWebhook, auth: TokenAuth
) -> None:
    app.include_router(image_routes(images, users, auth))
    app.include_router(webhook_routes(webhook, auth))
