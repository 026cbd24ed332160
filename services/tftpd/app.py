"""tftpd wiring: a shell that answers /healthz until its issue fills it in."""

from __future__ import annotations

import logging

from libs.common.bus import Bus
from libs.common.httpapi import create_app
from libs.common.service import Service
from libs.common.settings import Settings

log = logging.getLogger("wolfpack.tftpd")


class TftpdService:
    def __init__(self) -> None:
        self.app = create_app("tftpd", title="wolfpack tftpd", version="1")

    async def start(self) -> None:
        log.info("tftpd ready (shell: filled in by a later issue)")

    async def stop(self) -> None:
        pass


async def build(settings: Settings, bus: Bus) -> Service:
    return TftpdService()
