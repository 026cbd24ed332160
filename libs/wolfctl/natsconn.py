"""How wolfctl connects to NATS: once, without nats.py's retries (a refused token or no
server is known at once, and the caller decides what that means), presenting the data
folder's token when the server is `wolfpack up`'s (libs/common/bus/auth.py)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from libs.common.apiclient.config import nats_token_for

if TYPE_CHECKING:
    from nats.aio.client import Client


async def _quiet(err: Exception) -> None:
    """nats.py would print each connect error; the caller says it once."""


async def connect_once(url: str, connect_timeout: float, **options: Any) -> Client:
    import nats

    return await nats.connect(
        url,
        token=nats_token_for(os.environ, url),
        connect_timeout=connect_timeout,
        allow_reconnect=False,
        # nats.py tries a server that will not answer for ever when this is 0 (it counts
        # only above 0): so one try, and one more at once, then NoServersError.
        max_reconnect_attempts=1,
        reconnect_time_wait=0,
        error_cb=_quiet,
        **options,
    )
