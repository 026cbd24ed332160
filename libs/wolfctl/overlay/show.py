"""`wolfctl overlay show NAME [FILE] [--render NODE]`: an overlay's entries, one file's
content, or what it renders for a node."""

from __future__ import annotations

import sys
from urllib.parse import quote

import click

from libs.common.apiclient.overlayd import file_path
from libs.common.models.overlay_api import OverlaySummary, RenderedFile
from libs.wolfctl.context import output_format, output_option, run
from libs.wolfctl.output import dump, echo, table
from libs.wolfctl.overlay.client import client
from libs.wolfctl.overlay.view import ENTRY_HEADERS, entry_rows, rendered_rows


async def _content(ctx: click.Context, name: str, path: str, node: str | None) -> bytes:
    async with client(ctx) as api:
        params = {"render": node} if node else None
        return (await api.request("GET", file_path(name, path), params=params)).content


async def _rendered(ctx: click.Context, name: str, node: str) -> list[RenderedFile]:
    async with client(ctx) as api:
        path = f"/overlays/{quote(name, safe='')}"
        return await api.get(path, list[RenderedFile], params={"render": node})


async def _show(ctx: click.Context, name: str) -> OverlaySummary:
    async with client(ctx) as api:
        return await api.get(f"/overlays/{quote(name, safe='')}", OverlaySummary)


@click.command(
    "show",
    help="Show overlay NAME: its entries, or FILE's content; with --render NODE, what it "
    "renders for NODE.",
)
@click.argument("name")
@click.argument("file", required=False)
@click.option("-r", "--render", "node", metavar="NODE", help="render the overlay for NODE")
@output_option
@click.pass_context
def command(
    ctx: click.Context, name: str, file: str | None, node: str | None, output: str | None
) -> None:
    if file is not None:
        sys.stdout.buffer.write(run(_content(ctx, name, file, node)))
        sys.stdout.buffer.flush()
        return
    fmt = output_format(ctx, output)
    if node is not None:
        files = run(_rendered(ctx, name, node))
        echo(dump(files, fmt) if fmt != "table" else table(ENTRY_HEADERS, rendered_rows(files)))
        return
    overlay = run(_show(ctx, name))
    if fmt != "table":
        echo(dump(overlay, fmt))
    else:
        echo(table(ENTRY_HEADERS, entry_rows(overlay.files or {})))
