"""Click groups of the command tree: wwctl's verb aliases, and errors turned into one line."""

from __future__ import annotations

from typing import Any

import click

from libs.common.errors import WolfpackError
from libs.wolfctl.batch import BatchFailed

# wwctl's aliases (`node ls`, `node rm`, `node modify`).
ALIASES = {"ls": "list", "rm": "delete", "del": "delete", "remove": "delete", "modify": "set"}

PROG = "wolfctl"


class NounGroup(click.Group):
    """A noun gathering its verbs; answers to wwctl's aliases too."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is None and cmd_name in ALIASES:
            found = super().get_command(ctx, ALIASES[cmd_name])
        return found


def fail(lines: list[str]) -> None:
    for line in lines:
        click.echo(f"{PROG}: error: {line}", err=True)


class RootGroup(NounGroup):
    """The root: an expected error is one line on stderr and exit code 1, no traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BatchFailed as e:
            fail(e.lines())
            ctx.exit(1)
        except WolfpackError as e:
            fail([str(e)])
            ctx.exit(1)
