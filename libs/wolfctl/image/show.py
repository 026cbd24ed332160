"""`wolfctl image show NAME`: one image, its rootfs path and its last job."""

from __future__ import annotations

import click

from libs.common.models.image import ImageDetails, validate_image_name
from libs.wolfctl.context import output_format, output_option, run
from libs.wolfctl.image.jobs import client
from libs.wolfctl.image.view import show_rows
from libs.wolfctl.output import dump, echo, table


async def fetch_image(ctx: click.Context, name: str) -> ImageDetails:
    validate_image_name(name)
    async with client(ctx) as api:
        return await api.get(f"/images/{name}", ImageDetails)


@click.command("show", help="Show image NAME: digests, kernel, size, rootfs path, last job.")
@click.argument("name")
@output_option
@click.pass_context
def command(ctx: click.Context, name: str, output: str | None) -> None:
    image = run(fetch_image(ctx, name))
    fmt = output_format(ctx, output)
    echo(dump(image, fmt) if fmt != "table" else table(("FIELD", "VALUE"), show_rows(image)))
