"""The client token of `wolfpack up`'s embedded nats-server (DATA/nats.token, mode 0600).

Without it any local user could connect to NATS on 127.0.0.1 and write KV directly (a node's
manifest, say), around the API token. Every wolfpack process on the host that reads DATA
presents it. A URL that carries its own credentials (`nats://user:pass@host`, a server of the
site's) keeps them: the token is only for our own server.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from libs.common import names
from libs.common.errors import WolfpackError
from libs.common.token import read_token


def nats_token(url: str, data_dir: Path) -> str | None:
    """The token to present at `url`: DATA's nats.token unless the URL has credentials."""
    if any(urlsplit(server.strip()).username for server in url.split(",")):
        return None
    try:
        return read_token(data_dir, names.NATS_TOKEN_FILE)
    except (OSError, WolfpackError):
        return None  # unreadable (another user) or empty: connect without, and be refused
