"""`wolfctl profile list [NAMES...]`: names and comments, `-a` every field, or JSON/YAML."""

from __future__ import annotations

from typing import Any

import click

from libs.common.apiclient.client import Registry
from libs.common.models.api import MergedProfile
from libs.common.models.node import Profile
from libs.wolfctl.context import globals_of, output_format, output_option, run
from libs.wolfctl.fieldview import FieldLister
from libs.wolfctl.kinds import PROFILE, expand_names, list_objects
from libs.wolfctl.output import dump, echo, table

Row = tuple[str, ...]


def summary_rows(profiles: list[Profile]) -> list[Row]:
    return [(p.name, p.comment or "") for p in profiles]


def all_rows(merged: list[MergedProfile], reveal: bool = False) -> list[Row]:
    lister = FieldLister(reveal=reveal)
    return [
        (m.profile.name, field, source, value)
        for m in merged
        for field, source, value in lister.rows(m.profile, m.provenance)
    ]


async def _fetch(
    ctx: click.Context, merged: bool, names: list[str] | None, secrets: bool
) -> list[Any]:
    async with Registry(globals_of(ctx).api_config()) as api:
        return await list_objects(api, PROFILE, merged=merged, names=names, secrets=secrets)


@click.command("list", help="List profiles, all or those named.")
@click.argument("names", nargs=-1)
@click.option("-a", "--all", "all_", is_flag=True, help="every field, with where it came from")
@click.option(
    "--secrets", is_flag=True, help="show the IPMI password instead of a mask (needs the token)"
)
@output_option
@click.pass_context
def command(
    ctx: click.Context, names: tuple[str, ...], all_: bool, secrets: bool, output: str | None
) -> None:
    fmt = output_format(ctx, output)
    objects = run(_fetch(ctx, all_, expand_names(names) if names else None, secrets))
    if fmt != "table":
        echo(dump(objects, fmt))
    elif all_:
        echo(table(("PROFILE", "FIELD", "SOURCE", "VALUE"), all_rows(objects, reveal=secrets)))
    else:
        echo(table(("PROFILE NAME", "COMMENT/DESCRIPTION"), summary_rows(objects)))
