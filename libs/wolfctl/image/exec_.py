"""`wolfctl image exec NAME -- CMD...`: run a command in the image's rootfs, then rebuild."""

from __future__ import annotations

import click

from libs.common.models.image import validate_image_name
from libs.wolfctl.image.change import change_image


@click.command(
    "exec",
    help="Run CMD chrooted in image NAME's rootfs (with /proc, /sys, /dev and the host's "
    "resolv.conf bound in), then rebuild the image. Needs root, on the builder's machine.",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.option("--no-build", is_flag=True, help="do not rebuild the image afterwards")
@click.argument("name")
@click.argument("cmd", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
def command(ctx: click.Context, no_build: bool, name: str, cmd: tuple[str, ...]) -> None:
    validate_image_name(name)
    options, argv = split_command(list(cmd))
    for option in options:
        if option != "--no-build":
            raise click.UsageError(f"no such option before `--`: {option}")
        no_build = True
    if not argv:
        raise click.UsageError("give the command to run after NAME and `--`")
    change_image(ctx, name, argv, build=not no_build)


def split_command(words: list[str]) -> tuple[list[str], list[str]]:
    """`[--no-build] -- CMD...` after NAME: the options, then the command. A `--` further on
    (after a word that is not an option) belongs to the command."""
    if "--" in words:
        cut = words.index("--")
        if all(word.startswith("-") for word in words[:cut]):
            return words[:cut], words[cut + 1 :]
    return [], words
