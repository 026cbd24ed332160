"""bootd wiring: the index watchers, the boot server and its routes, served by uvicorn with
blobs sent by sendfile(2) (services.bootd.blobs.ZeroCopy)."""

from __future__ import annotations

import logging
from typing import Final

import nats.errors
from starlette.types import ASGIApp

from libs.common import names
from libs.common.bus.connection import Bus
from libs.common.http.app import create_app
from libs.common.http.auth import TokenAuth
from libs.common.models.image import ImageMeta
from libs.common.models.node import Node
from libs.common.models.overlay import BootManifest
from libs.common.security.accepted_tokens import TokenFile
from libs.common.settings import Settings
from libs.common.store.cas import ContentStore
from libs.common.store.verified import Verifier
from services.bootd import api
from services.bootd.admission import Admission
from services.bootd.blobs import ZeroCopy
from services.bootd.boot import BootServer
from services.bootd.discovery import Discovery
from services.bootd.front import BootFront
from services.bootd.guard import BlobGuard, ServingStore
from services.bootd.history import TftpStages, replay
from services.bootd.index import IndexFeeder, ManifestIndex
from services.bootd.script import ScriptRenderer
from services.bootd.status import StagePublisher, StatusBook

log = logging.getLogger("wolfpack.bootd")


class BootdService:
    # Seconds an idle connection stays open (nginx's default; uvicorn's is 5). The clock starts
    # when a blob's last byte is handed to the kernel: a node still draining megabytes from the
    # socket buffers, then asking for its next file, must find its connection open.
    keep_alive: Final = 75
    # ZeroCopy sends whole blobs with sendfile(2) on uvicorn's h11 protocol only (it stands on
    # its request cycle): named, so installing httptools cannot turn it off unseen.
    http: Final = "h11"

    def __init__(
        self,
        app: ASGIApp,
        feeder: IndexFeeder,
        bus: Bus,
        book: StatusBook,
        verifier: Verifier,
    ) -> None:
        self.app = app
        self.feeder = feeder
        self._bus = bus
        self._book = book
        self._tftp = TftpStages(bus, book)
        self._verifier = verifier

    async def start(self) -> None:
        await self.feeder.start()
        try:
            replayed = await replay(self._bus, self._book)
        except nats.errors.Error as err:
            log.warning("boot history not read from the stream: %s", err)
            replayed = 0
        await self._tftp.start()
        log.info(
            "bootd ready: %d boot manifests, %d discoverable nodes, %d past boot stages",
            len(self.feeder.index.by_node),
            len(self.feeder.index.discoverable),
            replayed,
        )

    async def stop(self) -> None:
        await self._tftp.stop()
        await self.feeder.stop()
        self._verifier.close()


async def build(settings: Settings, bus: Bus) -> BootdService:
    tokens = TokenFile.ensure(settings.data_dir)
    index = ManifestIndex()
    feeder = IndexFeeder(
        index,
        await bus.bucket(names.BUCKET_BOOT, BootManifest),
        await bus.bucket(names.BUCKET_NODES, Node),
        await bus.bucket(names.BUCKET_IMAGES, ImageMeta),
    )
    book = StatusBook()
    verifier = Verifier(ContentStore(settings.cas_dir))
    stall = settings.bootd_stall_seconds
    guard = BlobGuard(verifier, Admission(settings.max_transfers), stall=stall)
    boot = BootServer(
        index,
        ServingStore(settings.cas_dir, guard),
        ScriptRenderer(),
        Discovery(bus, index),
        StagePublisher(bus, book),
        secure=settings.bootd_secure,
    )
    app = create_app("bootd", title="wolfpack bootd", version="1")
    auth = TokenAuth(tokens, public_read=settings.public_read)
    api.mount(app, BootFront(boot, book, guard), auth)
    return BootdService(ZeroCopy(app, stall), feeder, bus, book, verifier)
