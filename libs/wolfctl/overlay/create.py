"""`wolfctl overlay create NAME [--empty]`: a site overlay (a copy of the shipped one of the
same name, if there is one, unless --empty)."""

from __future__ import annotations

import click

from libs.common.models.overlay_api import OverlayCreate, OverlaySummary
from libs.wolfctl.context import run
from libs.wolfctl.overlay.client import client


async def _create(ctx: click.Context, name: str, empty: bool) -> OverlaySummary:
    async with client(ctx) as api:
        body = OverlayCreate(name=name, empty=empty)
        return await api.send("POST", "/overlays", body, OverlaySummary)


@click.command("create", help="Create site overlay NAME.")
@click.argument("name")
@click.option("--empty", is_flag=True, help="start empty even if a shipped overlay has this name")
@click.pass_context
def command(ctx: click.Context, name: str, empty: bool) -> None:
    created = run(_create(ctx, name, empty))
    click.echo(f"overlay {created.name} created ({created.entries} entries)")
