"""Where a service's HTTP server listens, and how: plain HTTP, or HTTPS under `--tls`.

Under `--tls` every service's API is HTTPS on its own port, except bootd's: nodes boot with
iPXE, which cannot trust a private CA, so bootd keeps plain HTTP on its port for the boot path
and serves the same routes over HTTPS on names.BOOTD_TLS_PORT, as Warewulf 4.7 keeps 9873
plain and adds its `tls port`. bootd's plain port then refuses the API, whose token would
cross the network in clear, as Warewulf does with `api: tls`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

from libs.common import names
from libs.common.http.bodies import error_response
from libs.common.settings import Settings

# Services whose own port stays plain HTTP under --tls, with the port of their HTTPS twin.
PLAIN_FOR_NODES: Final = {"bootd": names.BOOTD_TLS_PORT}


@dataclass(frozen=True)
class Listener:
    port: int
    tls: bool


def listeners(settings: Settings, service: str) -> list[Listener]:
    own = settings.port(service)
    if not settings.tls:
        return [Listener(own, tls=False)]
    twin = PLAIN_FOR_NODES.get(service)
    if twin is None:
        return [Listener(own, tls=True)]
    return [Listener(own, tls=False), Listener(twin + settings.port_offset, tls=True)]


def api_url(settings: Settings, service: str, host: str) -> str:
    """The base URL of `service`'s API at `host`: the HTTPS listener when there is one."""
    found = listeners(settings, service)
    chosen = next((listener for listener in found if listener.tls), found[0])
    host = f"[{host}]" if ":" in host else host
    return f"{'https' if chosen.tls else 'http'}://{host}:{chosen.port}"


class ApiNeedsTls:
    """On a plain listener beside an HTTPS one: refuse the API (403), naming the HTTPS port."""

    def __init__(self, app: ASGIApp, https_port: int) -> None:
        self.app = app
        self.https_port = https_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope.get("path", "")).startswith(names.API_PREFIX):
            refusal = error_response(
                403,
                f"this port is plain HTTP for booting nodes; the API is HTTPS on port "
                f"{self.https_port}",
            )
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)


def app_for(app: ASGIApp, listener: Listener, every: list[Listener]) -> ASGIApp:
    """The app as `listener` serves it: a plain twin of an HTTPS listener keeps the API out."""
    https = next((other.port for other in every if other.tls), None)
    if listener.tls or https is None:
        return app
    return ApiNeedsTls(app, https)
