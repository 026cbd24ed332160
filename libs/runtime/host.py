"""The host that runs one service: bus, token, HTTP server, signals.

`serve` takes the service's builder (`async def build(settings, bus) -> Service`, the contract
in libs/common/service.py) already loaded, starts the service, serves its ASGI app (FastAPI,
maybe wrapped) with uvicorn until SIGINT/SIGTERM, then stops it and closes the bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import ssl
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Final, TypeVar

import uvicorn
from starlette.types import ASGIApp

from libs.common import endpoints, errors, names
from libs.common.bus.auth import nats_token, shown_url
from libs.common.bus.connection import Bus, NatsRefused
from libs.common.http.listeners import app_for, listeners
from libs.common.logs import setup_logging
from libs.common.security.api_token import ensure_token
from libs.common.security.tls import ensure_tls, server_context, wanted_names
from libs.common.service import Builder, Service
from libs.common.settings import Settings
from libs.runtime.stragglers import cancel_stragglers

T = TypeVar("T")

SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)
# Open HTTP requests get this long to finish at shutdown, and so does each shutdown step
# (a service stopping, the bus closing): with NATS gone first, a step could wait forever.
GRACEFUL_SHUTDOWN: Final = 5
# Seconds an idle kept-alive connection stays open (uvicorn's default); a service may set its
# own with a `keep_alive` attribute.
KEEP_ALIVE: Final = 5
# uvicorn's HTTP implementation, by its name (h11, httptools): uvicorn's pick unless a
# service names the one it needs with an `http` attribute.
HTTP: Final = "auto"
# Seconds between tries while NATS refuses us for want of a token (a set-up step not done).
REFUSED_RETRY: Final = 5.0


class StartupFailed(Exception):
    """The service could not start; the message says why in one line."""


class _Stopped(Exception):
    """A stop signal arrived while the service was still starting."""


async def _unless_stopped(stop: asyncio.Event, aw: Awaitable[T]) -> T:
    """Await `aw`, but give up on it (cancel it) if a stop signal comes first."""
    work = asyncio.ensure_future(aw)
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({work, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if not work.done():
        work.cancel()
        await asyncio.wait({work}, timeout=GRACEFUL_SHUTDOWN)
        raise _Stopped
    return work.result()


def _bounded(
    what: str, step: Callable[[], Awaitable[None]], log: logging.Logger
) -> Callable[[], Awaitable[None]]:
    """`step` as a shutdown callback that gives up (and says so) after GRACEFUL_SHUTDOWN."""

    async def run() -> None:
        try:
            async with asyncio.timeout(GRACEFUL_SHUTDOWN):
                await step()
        except TimeoutError:
            log.warning("%s took over %ss; going on without it", what, GRACEFUL_SHUTDOWN)
        except Exception as exc:
            # Shutting down anyway: one line, and the other steps still run.
            log.warning("%s failed: %s", what, str(exc) or type(exc).__name__)

    return run


@contextlib.contextmanager
def stopped_by_signals(stop: asyncio.Event) -> Iterator[None]:
    """While the block runs, SIGINT and SIGTERM set `stop` (the loop's handlers, removed when
    the block ends, so a later signal gets Python's default again)."""
    loop = asyncio.get_running_loop()
    for sig in SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    try:
        yield
    finally:
        for sig in SIGNALS:
            loop.remove_signal_handler(sig)


def listen(host: str, port: int) -> socket.socket:
    """Bind the HTTP port before anything else, so "port in use" is one clear line, early."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise StartupFailed(f"cannot listen on {host}:{port}: {exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        raise StartupFailed(f"cannot listen on {host}:{port}: {reason}") from None
    return sock


async def _connect(name: str, settings: Settings, log: logging.Logger) -> Bus:
    # Bus.connect retries an unreachable server forever (compose may start NATS last). A server
    # that refuses our token is a set-up step not yet done (compose's nats-auth, the shared
    # data volume), so that is retried too: said once, in one line, not a crash loop.
    log.info("connecting to NATS at %s", shown_url(settings.nats_url))
    said = ""
    while True:
        token = nats_token(settings.nats_url, settings.data_dir)
        try:
            return await Bus.connect(
                settings.nats_url,
                name=f"wolfpack-{name}",
                token=token,
                retention=settings.events_retention,
            )
        except NatsRefused:
            reason = _missing_token(settings, token)
        except Exception as exc:
            reason = str(exc) or type(exc).__name__
            raise StartupFailed(
                f"cannot use NATS at {shown_url(settings.nats_url)}: {reason}"
            ) from None
        if reason != said:
            log.error("%s; retrying every %gs", reason, REFUSED_RETRY)
            said = reason
        await asyncio.sleep(REFUSED_RETRY)


def _missing_token(settings: Settings, token: str | None) -> str:
    """What to do about a refusal, in one line: which file of DATA is missing, or stale."""
    where = shown_url(settings.nats_url)
    data = settings.data_dir
    if token is not None:
        return (
            f"NATS at {where} refused the token in {data / names.NATS_TOKEN_FILE}: the server "
            "was started with another one (run `wolfpack nats-auth` again and restart it)"
        )
    if not (data / endpoints.FILE).is_file():
        return (
            f"NATS at {where} wants a token and {data} has none: no {endpoints.FILE} or "
            f"{names.NATS_TOKEN_FILE} there (is the shared data volume mounted, and has "
            f"`wolfpack nats-auth --data {data} --url {where}` run? In compose: nats-auth)"
        )
    return (
        f"NATS at {where} wants a token: {data / endpoints.FILE} names another NATS or "
        f"{names.NATS_TOKEN_FILE} is unreadable (run `wolfpack nats-auth --data {data} "
        f"--url {where}`)"
    )


# What one uvicorn server serves: the app, its bound socket, and the TLS context if HTTPS.
Served = tuple[ASGIApp, socket.socket, ssl.SSLContext | None]


def _given(
    context: ssl.SSLContext,
) -> Callable[[uvicorn.Config, Callable[[], ssl.SSLContext]], ssl.SSLContext]:
    """A uvicorn `ssl_context_factory` that hands over a context made beforehand."""
    return lambda _config, _default: context


def server_config(app: ASGIApp, tls: ssl.SSLContext | None, service: object) -> uvicorn.Config:
    """How uvicorn serves `app` for `service`, with the `keep_alive` and `http` it asks for."""
    return uvicorn.Config(
        app,
        http=getattr(service, "http", HTTP),
        log_config=None,
        lifespan="off",
        timeout_keep_alive=getattr(service, "keep_alive", KEEP_ALIVE),
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
        # The context is made (and checked) before serving: see _tls_context.
        ssl_context_factory=None if tls is None else _given(tls),
    )


async def _serve_http(
    served: Sequence[Served], stop: asyncio.Event, log: logging.Logger, service: object
) -> None:
    servers = []
    for app, sock, tls in served:
        servers.append(uvicorn.Server(server_config(app, tls, service)))
        host, port = sock.getsockname()[:2]
        log.info("listening on %s://%s:%d", "http" if tls is None else "https", host, port)
    # uvicorn handles SIGINT/SIGTERM itself while it serves and re-raises them afterwards;
    # our loop handlers see them either way, so `stop` is set whoever catches the signal.
    serving = [
        asyncio.create_task(server.serve(sockets=[sock]))
        for server, (_, sock, _) in zip(servers, served, strict=True)
    ]
    waiter = asyncio.create_task(stop.wait())
    # One server ending (it failed) ends them all: the supervisor restarts the process.
    await asyncio.wait({*serving, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    for server in servers:
        server.should_exit = True
    await asyncio.gather(*serving)


async def serve(name: str, build: Builder, settings: Settings) -> None:
    """Run service `name`, made by `build`, until SIGINT/SIGTERM. Raises StartupFailed if it
    cannot start."""
    log = setup_logging(name, settings.log_level)
    stop = asyncio.Event()
    try:
        with stopped_by_signals(stop):
            await _run(name, build, settings, stop, log)
    except _Stopped:
        log.info("stopped while starting")
    finally:
        left = await cancel_stragglers(GRACEFUL_SHUTDOWN)
        if left:
            # asyncio.run would wait for them for ever: a stopped service must end.
            log.warning("tasks ignored cancellation: %s; exiting without them", ", ".join(left))
            failure = sys.exc_info()[1]
            if failure is not None:
                log.error("%s", failure)
            logging.shutdown()
            os._exit(1 if failure is not None else 0)


async def _run(
    name: str, build: Builder, settings: Settings, stop: asyncio.Event, log: logging.Logger
) -> None:
    """Listen, connect, start the service and serve it until `stop`; every step undone in
    reverse order on the way out, each bounded."""
    async with contextlib.AsyncExitStack() as stack:
        plan = listeners(settings, name)
        socks = [stack.enter_context(listen(settings.bind, each.port)) for each in plan]
        bus = await _unless_stopped(stop, _connect(name, settings, log))
        stack.push_async_callback(_bounded("closing the bus", bus.close, log))
        _ensure_token(settings)
        tls = _tls_context(settings) if settings.tls else None
        service = await _unless_stopped(stop, _start(name, build, settings, bus, log))
        stack.push_async_callback(_bounded(f"stopping {name}", service.stop, log))
        if service.app is not None:
            served = [
                (app_for(service.app, each, plan), sock, tls if each.tls else None)
                for each, sock in zip(plan, socks, strict=True)
            ]
            await _serve_http(served, stop, log, service)
        else:
            await stop.wait()
        log.info("stopping")


def _ensure_token(settings: Settings) -> None:
    try:
        ensure_token(settings.data_dir)
    except (OSError, errors.WolfpackError) as exc:
        raise StartupFailed(f"cannot create the API token in {settings.data_dir}: {exc}") from None


def _tls_context(settings: Settings) -> ssl.SSLContext:
    """DATA/tls made or checked (libs.common.security.tls), then loaded: a problem is one line,
    early."""
    try:
        state = ensure_tls(settings.data_dir, wanted_names(settings.bind, None, settings.tls_names))
        return server_context(state.files)
    except (OSError, ssl.SSLError, ValueError, errors.WolfpackError) as exc:
        raise StartupFailed(f"cannot set up TLS in {settings.data_dir}/tls: {exc}") from None


async def _start(
    name: str, build: Builder, settings: Settings, bus: Bus, log: logging.Logger
) -> Service:
    try:
        service = await build(settings, bus)
        await service.start()
    except (StartupFailed, errors.WolfpackError, OSError) as exc:
        raise StartupFailed(f"{name} failed to start: {exc}") from exc
    except Exception as exc:
        # Not a failure anyone planned for: the traceback is what a developer needs.
        log.exception("start-up of %s failed", name)
        raise StartupFailed(f"{name} failed to start: {type(exc).__name__}: {exc}") from exc
    return service
