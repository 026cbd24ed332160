"""`wolfctl`: the root command and its global options.

Imports stay light here (no httpx, rich or yaml at import time): a `node list` of 10,000 nodes
must finish, process start included, well within two seconds.
"""

from __future__ import annotations

import click

from libs.wolfctl.context import FORMATS, Globals
from libs.wolfctl.events import command as events
from libs.wolfctl.groups import PROG, RootGroup
from libs.wolfctl.image import image
from libs.wolfctl.node import node
from libs.wolfctl.overlay import overlay
from libs.wolfctl.profile import profile


@click.group(PROG, cls=RootGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--url",
    metavar="URL",
    help="registry URL (default: $WOLFPACK_URL, else DATA/endpoints.json, "
    "else http://127.0.0.1:9870)",
)
@click.option(
    "--token",
    metavar="TOKEN",
    help="API token (default: $WOLFPACK_TOKEN, else DATA/api.token; DATA is $WOLFPACK_DATA)",
)
@click.option(
    "-o",
    "--output",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="output format",
)
@click.pass_context
def cli(ctx: click.Context, url: str | None, token: str | None, output: str) -> None:
    """Administer a wolfpack cluster: nodes, profiles and images, Warewulf style."""
    ctx.obj = Globals(url=url, token=token, output=output)


cli.add_command(node)
cli.add_command(profile)
cli.add_command(image)
cli.add_command(overlay)
cli.add_command(events)


def main() -> None:
    cli(prog_name=PROG)


if __name__ == "__main__":
    main()
