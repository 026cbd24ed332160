"""The registry's notification webhook: a push of a tagged manifest to a repository that
images follow becomes one `wolfpack.image.<name>.pushed` event per image. The work (digest
check, pull, build) is done by the durable consumer of those events, so the registry gets
its answer at once and a push survives a builder restart."""

from __future__ import annotations

import logging
from typing import Protocol

from libs.common import subjects
from libs.common.bus.publisher import Publisher
from libs.common.models.image import ImageMeta, ImagePushed, WebhookAnswer
from services.builder.pushes import decode_envelope, follows, manifest_pushes

log = logging.getLogger("wolfpack.builder")


class ImageLister(Protocol):
    async def list(self) -> list[ImageMeta]: ...


class RegistryWebhook:
    def __init__(self, images: ImageLister, publisher: Publisher) -> None:
        self._images = images
        self._publisher = publisher

    async def receive(self, body: bytes) -> WebhookAnswer:
        envelope = decode_envelope(body)
        pushes = manifest_pushes(envelope)
        answer = WebhookAnswer(ignored=len(envelope.events) - len(pushes))
        if not pushes:
            return answer
        images = await self._images.list()
        for push in pushes:
            target = push.target
            tag = target.tag or ""
            hosts = push.hosts()
            followers = [m for m in images if follows(m.source, target.repository, tag, hosts)]
            if not followers:
                answer.ignored += 1
                continue
            for meta in followers:
                event = ImagePushed(
                    name=meta.name,
                    repository=target.repository,
                    tag=tag,
                    digest=target.digest,
                    host=push.request.host or None,
                )
                # The registry retries a notification it thinks failed: the stream drops
                # a second copy of the same event for the same image.
                msg_id = f"{push.id}/{meta.name}" if push.id else None
                await self._publisher.publish(
                    subjects.image(meta.name, "pushed"), event, msg_id=msg_id
                )
                answer.pushed.append(meta.name)
                log.info("push of %s:%s (%s) → image %s", target.repository, tag,
                         target.digest, meta.name)  # fmt: skip
        return answer
