"""`wolfctl node export [-f FILE]`: the registry as a Warewulf 4 nodes.conf (YAML)."""

from __future__ import annotations

from pathlib import Path

import click

from libs.common.apiclient.client import Registry
from libs.common.errors import WolfpackError
from libs.wolfctl.context import globals_of, run
from libs.wolfctl.output import echo


async def _export(ctx: click.Context, secrets: bool) -> str:
    params = {"secrets": "true"} if secrets else None
    async with Registry(globals_of(ctx).api_config()) as api:
        resp = await api.request(
            "GET", "/export", params=params, headers={"Accept": "application/yaml"}
        )
    return resp.text


@click.command("export", help="Print all profiles and nodes as a Warewulf 4 nodes.conf.")
@click.option(
    "-f",
    "--file",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="write to FILE instead of stdout",
)
@click.option(
    "--secrets",
    is_flag=True,
    help="include IPMI passwords and asset keys (masked otherwise; importing a masked file "
    "keeps the stored ones)",
)
@click.pass_context
def command(ctx: click.Context, file: Path | None, secrets: bool) -> None:
    text = run(_export(ctx, secrets))
    if file is None:
        echo(text)
    else:
        try:
            file.write_text(text, encoding="utf-8")
        except OSError as e:
            raise WolfpackError(f"cannot write {file}: {e.strerror}") from None
