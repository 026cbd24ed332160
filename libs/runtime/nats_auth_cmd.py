"""`wolfpack nats-auth`: lock a NATS that `wolfpack up` does not run (docker compose's, a
cluster's) the way up locks its own: a client token in DATA/nats.token (0600), a config file
for that nats-server (`-c DATA/nats/auth.conf`), and the server's URL in DATA/endpoints.json,
which is how every wolfpack process reading DATA knows to present the token there and to no
other server (libs.common.bus.auth)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import click
import msgspec

from libs.common import endpoints, names
from libs.common.bus.auth import ensure_nats_auth, shown_url
from libs.common.errors import Invalid, WolfpackError
from libs.common.security.api_token import token_path
from libs.runtime.options import data_option

# What nats.py connects to.
URL_SCHEMES: Final = ("nats", "tls", "ws", "wss")


def lock_nats(data_dir: Path, url: str, aliases: Sequence[str] = ()) -> Path:
    """The token made (or kept), the server's config written, `url` recorded as DATA's NATS
    and `aliases` as other URLs of the same server; the config file's path. A bad URL or an
    unreadable endpoints.json changes nothing."""
    for one in (url, *aliases):
        check_url(one)
    try:
        known = endpoints.read_endpoints(data_dir)
    except FileNotFoundError:
        known = endpoints.Endpoints(
            nats=url, services={}, token_file=str(token_path(data_dir).resolve())
        )
    config = ensure_nats_auth(data_dir)
    endpoints.write_endpoints(
        data_dir, msgspec.structs.replace(known, nats=url, nats_aliases=list(aliases))
    )
    return config


def check_url(url: str) -> None:
    """Invalid unless every server of `url` (comma-separated) is scheme://host:port."""
    for one in url.split(","):
        parts = urlsplit(one.strip())
        try:
            port = parts.port
        except ValueError:
            port = None
        if parts.scheme not in URL_SCHEMES or not parts.hostname or port is None:
            raise Invalid(
                f"{one.strip()!r} is not a NATS server URL: write it as nats://HOST:PORT",
                field="url",
            )


@click.command("nats-auth")
@data_option("Data directory shared with the services.")
@click.option(
    "--url",
    required=True,
    help="The NATS URL the services use, e.g. nats://nats:4222 (as their --nats).",
)
@click.option(
    "--also",
    "aliases",
    multiple=True,
    metavar="URL",
    help="Another URL of the same server, for services that reach it another way "
    "(host-networked containers: nats://127.0.0.1:4222). Repeatable.",
)
def nats_auth(data: str, url: str, aliases: tuple[str, ...]) -> None:
    """Make the NATS token and a config file for its nats-server (`-c`); the services reading
    DATA then present the token to that URL (and its aliases). Run again, it keeps the token."""
    try:
        config = lock_nats(Path(data), url, aliases)
    except (OSError, msgspec.MsgspecError, WolfpackError) as err:
        raise click.ClickException(f"cannot lock NATS in {data}: {err}") from None
    click.echo(f"token in {token_path(Path(data), names.NATS_TOKEN_FILE)}")
    click.echo(
        f"start nats-server with -c {config}; services present the token to "
        + " and ".join(shown_url(u) for u in (url, *aliases))
    )
