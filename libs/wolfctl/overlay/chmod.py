"""`wolfctl overlay chmod NAME FILE MODE`: the permission bits of an entry."""

from __future__ import annotations

from urllib.parse import quote

import click

from libs.common.models.overlay_api import ChmodRequest, OverlaySummary
from libs.wolfctl.context import run
from libs.wolfctl.overlay.client import client


async def _chmod(ctx: click.Context, name: str, path: str, mode: str) -> OverlaySummary:
    async with client(ctx) as api:
        body = ChmodRequest(path=path, mode=mode)
        return await api.send(
            "POST", f"/overlays/{quote(name, safe='')}/chmod", body, OverlaySummary
        )


@click.command("chmod", help="Set the mode of FILE in overlay NAME, in octal like 0600.")
@click.argument("name")
@click.argument("path", metavar="FILE")
@click.argument("mode")
@click.pass_context
def command(ctx: click.Context, name: str, path: str, mode: str) -> None:
    run(_chmod(ctx, name, path, mode))
