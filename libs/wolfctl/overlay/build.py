"""`wolfctl overlay build [NODES]`: render every node's overlays now (or those of NODES, a
hostlist range) and wait for it; exit status 1 if any node failed."""

from __future__ import annotations

import click

from libs.common.apiclient.client import decode
from libs.common.models.overlay_api import WaveReport
from libs.wolfctl.context import output_format, output_option, run
from libs.wolfctl.output import dump, echo
from libs.wolfctl.overlay.client import client
from libs.wolfctl.overlay.view import report_text


async def _build(ctx: click.Context, nodes: str | None) -> WaveReport:
    async with client(ctx) as api:
        params = {"nodes": nodes} if nodes else None
        return decode(await api.request("POST", "/overlays:build", params=params), WaveReport)


@click.command("build", help="Render the overlays of NODES (a range; default: every node).")
@click.argument("nodes", required=False)
@output_option
@click.pass_context
def command(ctx: click.Context, nodes: str | None, output: str | None) -> None:
    report = run(_build(ctx, nodes))
    fmt = output_format(ctx, output)
    echo(dump(report, fmt) if fmt != "table" else report_text(report))
    if report.failed:
        ctx.exit(1)
