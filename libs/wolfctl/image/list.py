"""`wolfctl image list`: the images the builder has built."""

from __future__ import annotations

import click

from libs.common.models.image import ImageMeta
from libs.wolfctl.context import output_format, output_option, run
from libs.wolfctl.image.jobs import client
from libs.wolfctl.image.view import LIST_HEADERS, list_rows
from libs.wolfctl.output import dump, echo, table


async def _list(ctx: click.Context) -> list[ImageMeta]:
    async with client(ctx) as api:
        return await api.get("/images", list[ImageMeta])


@click.command("list", help="List the images.")
@output_option
@click.pass_context
def command(ctx: click.Context, output: str | None) -> None:
    images = run(_list(ctx))
    fmt = output_format(ctx, output)
    echo(dump(images, fmt) if fmt != "table" else table(LIST_HEADERS, list_rows(images)))
