"""tftpd wiring: the TFTP root, the node address map and the listener; /healthz over HTTP."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from fastapi import FastAPI

from libs.common import names, subjects
from libs.common.bus.connection import Bus
from libs.common.http.app import create_app
from libs.common.models.boot_stage import BootStage
from libs.common.models.node import Node
from libs.common.settings import Settings
from services.tftpd import root as tftp_root
from services.tftpd.nodes import NodeAddresses
from services.tftpd.server import TftpServer
from services.tftpd.transfer import Outcome

log = logging.getLogger("wolfpack.tftpd")


class TftpdService:
    def __init__(
        self,
        app: FastAPI,
        bus: Bus,
        nodes: NodeAddresses,
        settings: Settings,
        root: tftp_root.TftpRoot,
    ) -> None:
        self.app = app
        self._bus = bus
        self._nodes = nodes
        self.server = TftpServer(
            root,
            self._published,
            bind=settings.bind,
            port=names.TFTP_PORT + settings.port_offset,
            per_client=settings.tftp_per_client,
        )

    async def start(self) -> None:
        await self._nodes.start()
        await self.server.start()

    async def stop(self) -> None:
        await self.server.stop()
        await self._nodes.stop()

    async def _published(self, outcome: Outcome) -> None:
        """Each transfer, served or failed, is a `tftp` boot stage of the node at that IP."""
        ip, port = outcome.remote
        node = self._nodes.name_for(ip)
        if outcome.probe:
            log.debug("%s (%s) probed the size of %r", node, ip, outcome.file)
            return
        if outcome.ok:
            log.info("%s (%s) fetched %r: %d bytes", node, ip, outcome.file, outcome.bytes)
        else:
            log.warning("%s (%s) could not fetch %r: %s", node, ip, outcome.file, outcome.error)
        event = BootStage(
            node=node,
            stage="tftp",
            file=outcome.file,
            bytes=outcome.bytes,
            remote=f"{ip}:{port}",
            duration=round(outcome.duration, 6),
            ok=outcome.ok,
            error=outcome.error,
        )
        try:
            await self._bus.publish(subjects.node(node, "boot"), event)
        except Exception as exc:
            log.warning("could not publish the boot stage of %s: %s", node, exc)


def load_root(settings: Settings) -> tftp_root.TftpRoot:
    """--tftp-root if given, else DATA/tftp filled from the ipxe package."""
    if settings.tftp_root:
        return tftp_root.configured(Path(settings.tftp_root))
    return tftp_root.assemble(settings.data_dir / "tftp")


async def build(settings: Settings, bus: Bus) -> TftpdService:
    # tftpy logs every client error packet (the firmware's size probe too) at ERROR.
    logging.getLogger("tftpy").setLevel(logging.CRITICAL)
    root = await asyncio.to_thread(load_root, settings)
    nodes = NodeAddresses(await bus.bucket(names.BUCKET_NODES, Node))
    app = create_app("tftpd", title="wolfpack tftpd", version="1")
    return TftpdService(app, bus, nodes, settings, root)
