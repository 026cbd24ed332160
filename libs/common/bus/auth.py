"""The client token of `wolfpack up`'s embedded nats-server (DATA/nats.token, mode 0600).

Without it any local user could connect to NATS on 127.0.0.1 and write KV directly (a node's
manifest, say), around the API token. Every wolfpack process on the host that reads DATA
presents it to that server, and to no other: only to the URL `wolfpack up` (or `wolfpack
nats-auth`) wrote into DATA/endpoints.json, or one of that server's aliases there. A URL with
credentials of its own keeps them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import msgspec

from libs.common import endpoints, names
from libs.common.bus.server import write_auth_config
from libs.common.errors import WolfpackError
from libs.common.security.api_token import ensure_token, read_token

REFUSED: Final = "authorization violation"
# nats-server's config file wanting the token, beside up's JetStream store in DATA/nats.
AUTH_CONFIG: Final = Path("nats") / "auth.conf"


def ensure_nats_auth(data_dir: Path) -> Path:
    """DATA's NATS token and store key (each made once) and the nats-server config file that
    wants the token and encrypts the JetStream store with the key (written every time, so it
    follows them); the config file's path. Without the key the store cannot be read: it is
    backed up with DATA (docs/security.md, "Secrets at rest")."""
    token = ensure_token(data_dir, names.NATS_TOKEN_FILE)
    key = ensure_token(data_dir, names.NATS_KEY_FILE)
    config = data_dir / AUTH_CONFIG
    write_auth_config(config, token, key)
    return config


def nats_token(url: str, data_dir: Path) -> str | None:
    """The token to present at `url`: DATA's nats.token when every server `url` lists is
    DATA's own NATS (its URL or one of its aliases)."""
    try:
        known = endpoints.read_endpoints(data_dir)
    except (OSError, msgspec.MsgspecError):
        return None  # no up or nats-auth wrote this folder (a bench): no token
    ours = {_plain(u) for u in (known.nats, *known.nats_aliases) for u in u.split(",")}
    servers = url.split(",")
    if any(_plain(u) not in ours or urlsplit(u.strip()).username for u in servers):
        return None
    try:
        return read_token(data_dir, names.NATS_TOKEN_FILE)
    except (OSError, WolfpackError):
        return None  # unreadable (another user) or empty: connect without, and be refused


def shown_url(url: str) -> str:
    """`url` as logs and messages may show it: credentials replaced by `***`."""
    return ",".join(_masked(u) for u in url.split(","))


def refused(err: BaseException | str) -> bool:
    """The server refused our credentials (nats.py says so only in the error's text)."""
    return REFUSED in str(err).lower()


def _plain(url: str) -> str:
    parts = urlsplit(url.strip())
    return f"{parts.scheme}://{parts.hostname}:{parts.port}"


def _masked(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.username is None:
        return url.strip()
    return parts._replace(netloc=f"***@{parts.netloc.rsplit('@', 1)[1]}").geturl()
