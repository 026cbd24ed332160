"""`wolfctl profile add NAME [flags]`: PUT with `If-None-Match: *`, so it only ever creates."""

from __future__ import annotations

from typing import Any

import click

from libs.common.apiclient.client import Registry
from libs.common.models.node import Profile
from libs.wolfctl.context import globals_of, output_format, run
from libs.wolfctl.flags import model_flags, set_options
from libs.wolfctl.kinds import PROFILE
from libs.wolfctl.output import dump, echo
from libs.wolfctl.patches import set_patch

FLAGS = model_flags(Profile)


async def _create(ctx: click.Context, name: str, body: dict[str, Any]) -> Profile:
    async with Registry(globals_of(ctx).api_config()) as api:
        return await api.send(
            "PUT", PROFILE.path(name), body, Profile, headers={"If-None-Match": "*"}
        )


@click.command("add", help="Add a profile named NAME with the fields given.")
@click.argument("name")
@set_options(FLAGS, create=True)
@click.pass_context
def command(ctx: click.Context, name: str, **params: Any) -> None:
    body = {**set_patch(FLAGS, params), "name": name}
    stored = run(_create(ctx, name, body))
    fmt = output_format(ctx)
    if fmt != "table":
        echo(dump(stored, fmt))
