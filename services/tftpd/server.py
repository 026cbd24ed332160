"""The TFTP listener: requests on the well-known port become Transfer tasks.

Only the first packet of a transfer arrives here. Anything that is not a readable RRQ is
dropped (garbage) or refused with an error packet (WRQ, a malformed request, too many
transfers at once, or from one client: slots.py); nothing a client sends can stop the
listener.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Awaitable, Callable
from typing import Final

from tftpy.TftpPacketFactory import TftpPacketFactory
from tftpy.TftpPacketTypes import TftpPacketRRQ

from services.tftpd.root import ACCESS_VIOLATION, TftpRoot
from services.tftpd.slots import MAX_TRANSFERS as MAX_TRANSFERS
from services.tftpd.slots import PER_CLIENT, Slots
from services.tftpd.transfer import NOT_DEFINED, Outcome, Transfer, error_packet

log = logging.getLogger("wolfpack.tftpd")

RRQ: Final = 1
WRQ: Final = 2
ILLEGAL_OPERATION: Final = 4
# A request is at most a name, a mode and a few options; real ones are far shorter.
MAX_REQUEST: Final = 1024

OnDone = Callable[[Outcome], Awaitable[None]]


class _Listener(asyncio.DatagramProtocol):
    def __init__(self, server: TftpServer) -> None:
        self._server = server

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            self._server.received(data, addr[:2])
        except Exception:
            # A bug here must not take the listener down with it.
            log.exception("request from %s:%s failed", *addr[:2])

    def error_received(self, exc: Exception) -> None:
        # ICMP "port unreachable" for an earlier reply: that client has gone.
        log.debug("TFTP socket: %s", exc)


class TftpServer:
    def __init__(
        self,
        root: TftpRoot,
        on_done: OnDone,
        *,
        bind: str,
        port: int,
        timeout: float = 5.0,
        retries: int = 3,
        max_transfers: int = MAX_TRANSFERS,
        per_client: int = PER_CLIENT,
    ) -> None:
        self.root = root
        self._on_done = on_done
        self._bind = bind
        self._port = port
        self._timeout = timeout
        self._retries = retries
        self._slots = Slots(max_transfers, per_client)
        self._factory = TftpPacketFactory()
        self._transport: asyncio.DatagramTransport | None = None
        # Keyed by the client's address and port: a repeated RRQ is a retransmission.
        self._transfers: dict[tuple[str, int], asyncio.Task[None]] = {}
        # Every task, transferring or still reporting its outcome, for stop() to end.
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> tuple[str, int]:
        if self._transport is None:
            raise RuntimeError("the TFTP server is not started")
        host, port = self._transport.get_extra_info("sockname")[:2]
        return host, port

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self._transport, _ = await loop.create_datagram_endpoint(
                lambda: _Listener(self), local_addr=(self._bind, self._port)
            )
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise OSError(
                exc.errno, f"cannot serve TFTP on {self._bind}:{self._port}/udp: {reason}"
            ) from None
        log.info("serving TFTP on %s:%d from %s", *self.address, self.root.root)

    async def stop(self) -> None:
        if self._transport is not None:
            self._transport.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def received(self, data: bytes, remote: tuple[str, int]) -> None:
        if len(data) < 4 or len(data) > MAX_REQUEST:
            return
        (opcode,) = struct.unpack("!H", data[:2])
        if opcode == WRQ:
            self._reply(remote, ACCESS_VIOLATION, "read-only server: uploads are refused")
            return
        if opcode != RRQ or remote in self._transfers:
            return  # not a request, or a retransmitted one already being served
        try:
            request = self._factory.parse(data)
        except Exception:
            self._reply(remote, ILLEGAL_OPERATION, "malformed read request")
            return
        if not isinstance(request, TftpPacketRRQ):
            return
        refused = self._slots.refusal(remote[0])
        if refused is not None:
            # One line when a limit is reached, not one per request of a flood.
            level = logging.WARNING if refused.news else logging.DEBUG
            log.log(level, "refusing %r from %s: %s", request.filename, remote[0], refused.reason)
            self._reply(remote, NOT_DEFINED, refused.reason)
            return
        transfer = Transfer(
            request,
            remote,
            self.root,
            bind=self._bind,
            timeout=self._timeout,
            retries=self._retries,
        )
        task = asyncio.create_task(self._run(transfer))
        self._slots.take(remote[0])
        self._transfers[remote] = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, transfer: Transfer) -> None:
        try:
            outcome = await transfer.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "transfer of %r to %s failed", transfer.request.filename, transfer.remote[0]
            )
            return
        finally:
            # Over before it is reported: a new request from this port is not a resend of
            # this one, however long the report takes (NATS slow or away).
            if self._transfers.pop(transfer.remote, None) is not None:
                self._slots.give_back(transfer.remote[0])
        try:
            await self._on_done(outcome)
        except Exception:
            log.exception("reporting the transfer of %r failed", transfer.request.filename)

    def _reply(self, remote: tuple[str, int], code: int, message: str) -> None:
        if self._transport is not None:
            self._transport.sendto(error_packet(code, message), remote)
