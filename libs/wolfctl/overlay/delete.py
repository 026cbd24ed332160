"""`wolfctl overlay delete NAME [FILE...]`: a site overlay (the shipped one of the same name
shows again), or files of it."""

from __future__ import annotations

from urllib.parse import quote

import click

from libs.common.apiclient.overlayd import file_path
from libs.wolfctl.context import run
from libs.wolfctl.overlay.client import client


async def _delete(ctx: click.Context, name: str, files: tuple[str, ...], recursive: bool) -> None:
    async with client(ctx) as api:
        if not files:
            await api.request("DELETE", f"/overlays/{quote(name, safe='')}")
            return
        params = {"recursive": "true"} if recursive else None
        for path in files:
            await api.request("DELETE", file_path(name, path), params=params)


@click.command("delete", help="Delete site overlay NAME, or FILEs of it.")
@click.argument("name")
@click.argument("files", nargs=-1, metavar="[FILE]...")
@click.option("-r", "--recursive", is_flag=True, help="delete directories with what they hold")
@click.option("-y", "--yes", is_flag=True, help="do not ask for confirmation")
@click.pass_context
def command(
    ctx: click.Context, name: str, files: tuple[str, ...], recursive: bool, yes: bool
) -> None:
    if not yes:
        what = f"{', '.join(files)} from overlay {name}" if files else f"site overlay {name}"
        click.confirm(f"Delete {what}?", abort=True, err=True)
    run(_delete(ctx, name, files, recursive))
