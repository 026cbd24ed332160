"""`wolfctl overlay mkdir NAME DIR [--mode MODE]`: a directory (and its parents)."""

from __future__ import annotations

from urllib.parse import quote

import click

from libs.common.models.overlay_api import MkdirRequest, OverlaySummary
from libs.wolfctl.context import run
from libs.wolfctl.overlay.client import client


async def _mkdir(ctx: click.Context, name: str, path: str, mode: str) -> OverlaySummary:
    async with client(ctx) as api:
        body = MkdirRequest(path=path, mode=mode)
        return await api.send(
            "POST", f"/overlays/{quote(name, safe='')}/mkdir", body, OverlaySummary
        )


@click.command("mkdir", help="Create directory DIR in overlay NAME.")
@click.argument("name")
@click.argument("path", metavar="DIR")
@click.option("-m", "--mode", default="0755", show_default=True, help="octal permission bits")
@click.pass_context
def command(ctx: click.Context, name: str, path: str, mode: str) -> None:
    run(_mkdir(ctx, name, path, mode))
