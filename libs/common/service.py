"""The service contract: what `services/<name>/app.py`'s `async def build(settings, bus)`
returns. The host that runs a service (libs/runtime/host.py) stands above the services and
takes the builder it has already loaded, as uvicorn's Server takes an imported app.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from starlette.types import ASGIApp

from libs.common.bus.connection import Bus
from libs.common.settings import Settings


class Service(Protocol):
    """What `build` returns: an optional HTTP app plus a start/stop lifetime."""

    # Read-only, so a service whose `app` is a plain FastAPI attribute fits.
    @property
    def app(self) -> ASGIApp | None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


Builder = Callable[[Settings, Bus], Awaitable[Service]]
