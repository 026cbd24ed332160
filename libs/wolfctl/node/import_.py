"""`wolfctl node import FILE`: send a Warewulf 4 nodes.conf to the registry (`-` reads stdin)."""

from __future__ import annotations

import click

from libs.common.apiclient.client import Registry
from libs.common.models.api import ImportResult
from libs.wolfctl.context import globals_of, output_format, run
from libs.wolfctl.output import dump, echo

YAML = "application/yaml"


async def _import(ctx: click.Context, text: str) -> ImportResult:
    async with Registry(globals_of(ctx).api_config()) as api:
        return await api.send_text("POST", "/import", text, YAML, ImportResult)


@click.command(
    "import",
    help="Import the profiles and nodes of a Warewulf 4 nodes.conf (YAML) FILE; "
    "objects of the same name are replaced.",
)
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.pass_context
def command(ctx: click.Context, file: click.utils.LazyFile) -> None:
    result = run(_import(ctx, file.read()))
    fmt = output_format(ctx)
    if fmt != "table":
        echo(dump(result, fmt))
    else:
        click.echo(
            f"imported {len(result.profiles)} profile(s) and {len(result.nodes)} node(s)", err=True
        )
