"""`wolfctl image delete NAME...`: forget images and remove their rootfs (blobs stay for gc)."""

from __future__ import annotations

import click

from libs.common.models.image import validate_image_name
from libs.wolfctl.batch import for_each
from libs.wolfctl.context import run
from libs.wolfctl.image.jobs import client


async def _delete(ctx: click.Context, names: list[str], force: bool) -> None:
    # Without --force the builder refuses (409, naming them) an image nodes or profiles use.
    query = "?force=true" if force else ""
    async with client(ctx) as api:
        await for_each(names, lambda name: api.delete(f"/images/{name}{query}"))


@click.command("delete", help="Delete the images NAMES and their rootfs folders.")
@click.argument("names", nargs=-1, required=True)
@click.option("-y", "--yes", is_flag=True, help="do not ask for confirmation")
@click.option("--force", is_flag=True, help="delete even if nodes or profiles use the image")
@click.pass_context
def command(ctx: click.Context, names: tuple[str, ...], yes: bool, force: bool) -> None:
    targets = list(dict.fromkeys(validate_image_name(n) for n in names))
    if not yes:
        click.confirm(f"Delete image(s) {', '.join(targets)}?", abort=True, err=True)
    run(_delete(ctx, targets, force))
