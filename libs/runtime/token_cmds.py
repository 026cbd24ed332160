"""`wolfpack token rotate|show`: replace the API token; say where it is and what is accepted.

The token itself is printed only by `show --reveal`. Running services follow a rotation by
themselves (libs.common.security.accepted_tokens) and wolfctl reads DATA/api.token at every run.
"""

from __future__ import annotations

import datetime
import os
import stat
import time
from pathlib import Path
from typing import Final

import click

from libs.common.errors import WolfpackError
from libs.common.security.api_token import read_token, token_path
from libs.common.security.token_rotation import read_previous, rotate_token
from libs.runtime.options import data_option

DEFAULT_GRACE: Final = 300
# A week: a grace longer than that is a second token, not a rotation.
MAX_GRACE: Final = 7 * 86400

_data_option = data_option("Data directory (the token is DATA/api.token).", exists=True)


def _when(at: float) -> str:
    return datetime.datetime.fromtimestamp(at).isoformat(sep=" ", timespec="seconds")


@click.group("token")
def token() -> None:
    """The API token in DATA/api.token."""


@token.command()
@_data_option
@click.option(
    "--grace",
    type=click.IntRange(0, MAX_GRACE),
    default=DEFAULT_GRACE,
    show_default=True,
    metavar="SECONDS",
    help="The old token stays valid this long, so scripts and other hosts can switch; "
    "0 revokes it and every earlier token still in its grace, at once (after a leak).",
)
def rotate(data: str, grace: int) -> None:
    """Write a new token (mode 0600). Running services accept it at once, without a restart;
    the old one is refused once its grace period ends. With --grace 0 every old token is
    refused at once, including those still in the grace of an earlier rotation."""
    try:
        done = rotate_token(Path(data), grace)
    except (OSError, WolfpackError) as err:
        raise click.ClickException(f"cannot rotate the token in {data}: {err}") from None
    click.echo(f"new token written to {done.path}")
    if not done.replaced:
        click.echo("there was no token before")
    elif done.expires is None:
        earlier = done.revoked_earlier
        also = f", and {earlier} replaced earlier that were still valid" if earlier else ""
        click.echo(f"the old token is revoked{also}")
    else:
        click.echo(f"the old token stays valid until {_when(done.expires)} ({grace} s)")


@token.command()
@_data_option
@click.option("--reveal", is_flag=True, help="Print the token itself too.")
def show(data: str, reveal: bool) -> None:
    """Where the token is, when it was written, and which replaced tokens are still valid."""
    path = token_path(Path(data))
    try:
        current = read_token(Path(data))
        info = os.stat(path) if current is not None else None
    except (OSError, WolfpackError) as err:
        raise click.ClickException(f"cannot read {path}: {err}") from None
    if current is None or info is None:
        raise click.ClickException(f"no token in {data} (`wolfpack up` makes one)")
    click.echo(f"token file: {path} (mode {stat.S_IMODE(info.st_mode):04o})")
    click.echo(f"written:    {_when(info.st_mtime)}")
    now = time.time()
    valid = sorted(p.expires for p in read_previous(Path(data)) if p.expires > now)
    for expires in valid:
        click.echo(f"also valid: a replaced token, until {_when(expires)}")
    if reveal:
        click.echo(current)
