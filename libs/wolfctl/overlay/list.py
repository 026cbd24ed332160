"""`wolfctl overlay list [-a]`: the overlays, shipped and site; -a lists every entry."""

from __future__ import annotations

import click

from libs.common.models.overlay_api import OverlaySummary
from libs.wolfctl.context import output_format, output_option, run
from libs.wolfctl.output import dump, echo, table
from libs.wolfctl.overlay.client import client
from libs.wolfctl.overlay.view import FILES_HEADERS, LIST_HEADERS, files_rows, list_rows


async def _list(ctx: click.Context, files: bool) -> list[OverlaySummary]:
    async with client(ctx) as api:
        params = {"files": "true"} if files else None
        return await api.get("/overlays", list[OverlaySummary], params=params)


@click.command("list", help="List the overlays (a site overlay shadows the shipped one).")
@click.option("-a", "--all", "all_files", is_flag=True, help="list every file of each overlay")
@output_option
@click.pass_context
def command(ctx: click.Context, all_files: bool, output: str | None) -> None:
    overlays = run(_list(ctx, all_files))
    fmt = output_format(ctx, output)
    if fmt != "table":
        echo(dump(overlays, fmt))
    elif all_files:
        echo(table(FILES_HEADERS, files_rows(overlays)))
    else:
        echo(table(LIST_HEADERS, list_rows(overlays)))
