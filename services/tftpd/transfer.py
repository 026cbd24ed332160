"""One read transfer, driven from asyncio through tftpy's server context and states.

tftpy's TftpServer is a blocking select loop that lets any non-TFTP exception (a non-ASCII
name, a bad option value) end it for everyone. Here each request gets its own task: tftpy's
context owns the transfer socket, the negotiated options and the metrics, its ExpectACK state
sends DATs and handles ACKs; this module only reads the socket, applies timeouts, and catches
everything a hostile peer can cause, so a failure ends one transfer, never the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
import time
from dataclasses import dataclass
from typing import Any, Final

from tftpy.TftpContexts import TftpContextServer
from tftpy.TftpPacketTypes import TftpPacketERR, TftpPacketRRQ
from tftpy.TftpShared import TftpException, TftpTimeoutExpectACK
from tftpy.TftpStates import TftpServerState, TftpStateExpectACK

from services.tftpd.options import MAX_BLKSIZE, negotiate
from services.tftpd.root import Refused, TftpRoot

log = logging.getLogger("wolfpack.tftpd")

# RFC 1350 error codes seen here.
NOT_DEFINED: Final = 0
UNKNOWN_TID: Final = 5
FAILED_NEGOTIATION: Final = 8
# Room for the largest DATA or ERROR a client could send, plus the header.
RECV_SIZE: Final = MAX_BLKSIZE + 4


def error_packet(code: int, message: str) -> bytes:
    """An ERROR packet with our own message (tftpy's only sends its fixed texts)."""
    text = message.encode("ascii", "replace")[:200]
    return struct.pack("!HH", 5, code) + text + b"\x00"


@dataclass(frozen=True)
class Outcome:
    """How one request ended; `probe` marks the firmware's size probe (aborted with error 8
    after the OACK, then asked again), which is normal and not reported as a failure."""

    file: str
    remote: tuple[str, int]
    bytes: int
    duration: float
    ok: bool
    error: str = ""
    probe: bool = False


class TransferFailed(Exception):
    pass


class _ServeFile(TftpServerState):
    """tftpy's RRQ state with the file opened by us and the options negotiated by us."""

    def __init__(self, context: Any, fileobj: Any, options: dict[str, int]) -> None:
        super().__init__(context)
        self._fileobj = fileobj
        self._options = options

    def handle(self, pkt: Any, raddress: str, rport: int) -> TftpStateExpectACK:
        ctx = self.context
        ctx.tidport = rport
        ctx.file_to_transfer = pkt.filename
        ctx.fileobj = self._fileobj
        # Only what the client asked for goes in the OACK (RFC 2347); tftpy's block size
        # defaults to 512 without it.
        ctx.options = dict(self._options)
        if "tsize" in ctx.options:
            ctx.options["tsize"] = os.fstat(self._fileobj.fileno()).st_size
        if self._options:
            self.sendOACK()  # the client ACKs block 0, then DATs follow
        else:
            ctx.next_block = 1
            ctx.pending_complete = self.sendDAT()
        return TftpStateExpectACK(ctx)


class Transfer:
    """Serve `request` from `root` to `remote` on a fresh socket (the server's transfer ID)."""

    def __init__(
        self,
        request: TftpPacketRRQ,
        remote: tuple[str, int],
        root: TftpRoot,
        *,
        bind: str,
        timeout: float,
        retries: int,
    ) -> None:
        self.request = request
        self.remote = remote
        self._root = root
        self._bind = bind
        self._timeout = timeout
        self._retries = retries

    async def run(self) -> Outcome:
        host, port = self.remote
        ctx = TftpContextServer(host, port, self._timeout, str(self._root.root), flock=False)
        ctx.sock.setblocking(False)
        if self._bind not in ("", "0.0.0.0"):
            # Answer from the address the client asked, as it expects.
            ctx.sock.bind((self._bind, 0))
        started = time.monotonic()
        ctx.metrics.start_time = time.time()
        try:
            await self._serve(ctx)
        except Refused as refused:
            self._send_error(ctx, refused.code, refused.message)
            return self._outcome(ctx, started, ok=False, error=refused.message)
        except _Probe:
            return self._outcome(ctx, started, ok=False, error="size probe", probe=True)
        except (TransferFailed, TftpException, OSError) as exc:
            return self._outcome(ctx, started, ok=False, error=str(exc) or type(exc).__name__)
        finally:
            with contextlib.suppress(Exception):
                ctx.end()
        return self._outcome(ctx, started, ok=True)

    async def _serve(self, ctx: Any) -> None:
        options = negotiate(self.request.options)
        if "timeout" in options:
            ctx.timeout = options["timeout"]
        fileobj = self._root.open(self.request.filename)
        ctx.last_update = time.time()
        ctx.state = _ServeFile(ctx, fileobj, options).handle(self.request, *self.remote)
        loop = asyncio.get_running_loop()
        while ctx.state is not None:
            try:
                data, sender = await asyncio.wait_for(
                    loop.sock_recvfrom(ctx.sock, RECV_SIZE), ctx.timeout
                )
            except TimeoutError:
                self._retry(ctx, "no answer")
                continue
            if sender != self.remote:
                # Someone else's packet on this transfer's port (RFC 1350: error 5, go on).
                with contextlib.suppress(OSError):
                    ctx.sock.sendto(error_packet(UNKNOWN_TID, "unknown transfer ID"), sender)
                continue
            self._handle(ctx, data)

    def _handle(self, ctx: Any, data: bytes) -> None:
        try:
            packet = ctx.factory.parse(data)
        except Exception:
            log.debug("%s: dropping a malformed packet", self._who())
            return
        if isinstance(packet, TftpPacketERR):
            # Firmware asks with tsize, reads the size from the OACK and aborts with error 8.
            if ctx.next_block == 0 and packet.errorcode == FAILED_NEGOTIATION:
                raise _Probe
            message = (packet.errmsg or b"").decode("ascii", "replace")
            raise TransferFailed(f"client aborted with error {packet.errorcode}: {message}")
        ctx.last_update = time.time()
        block = ctx.next_block
        try:
            ctx.state = ctx.state.handle(packet, *self.remote)
        except TftpTimeoutExpectACK:
            # Duplicate ACKs while our DAT went missing: send it again.
            self._retry(ctx, "only duplicate ACKs")
            return
        if ctx.next_block != block:
            ctx.retry_count = 0

    def _retry(self, ctx: Any, why: str) -> None:
        ctx.retry_count += 1
        if ctx.retry_count > ctx.retries:
            raise TransferFailed(
                f"timed out: {why} from the client after {ctx.retries} resends "
                f"({ctx.timeout} s apart)"
            )
        ctx.state.resendLast()

    def _send_error(self, ctx: Any, code: int, message: str) -> None:
        with contextlib.suppress(OSError):
            ctx.sock.sendto(error_packet(code, message), self.remote)

    def _outcome(
        self, ctx: Any, started: float, *, ok: bool, error: str = "", probe: bool = False
    ) -> Outcome:
        return Outcome(
            file=self.request.filename,
            remote=self.remote,
            bytes=ctx.metrics.bytes,
            duration=time.monotonic() - started,
            ok=ok,
            error=error,
            probe=probe,
        )

    def _who(self) -> str:
        return f"{self.remote[0]}:{self.remote[1]} {self.request.filename!r}"


class _Probe(Exception):
    """The client ended the transfer after the OACK with error 8 (a size probe)."""
