"""`wolfctl image shell NAME`: an interactive shell in the image's rootfs, then a rebuild."""

from __future__ import annotations

import click

from libs.common.models.image import validate_image_name
from libs.wolfctl.image.change import change_image

SHELLS = ("/bin/bash", "/bin/sh")


@click.command(
    "shell",
    help="Open a shell chrooted in image NAME's rootfs (as `image exec NAME -- /bin/sh`), "
    "then rebuild the image when it exits with 0. Needs root, on the builder's machine.",
)
@click.option("--no-build", is_flag=True, help="do not rebuild the image afterwards")
@click.option("--shell", "shell_path", metavar="PATH", help="shell to run (default: bash, else sh)")
@click.argument("name")
@click.pass_context
def command(ctx: click.Context, no_build: bool, shell_path: str | None, name: str) -> None:
    validate_image_name(name)
    # bash where the image has it; the chroot resolves the path inside the image.
    argv = [shell_path] if shell_path else ["/bin/sh", "-c", _PICK_SHELL]
    change_image(ctx, name, argv, build=not no_build)


# Decided inside the image (its /bin/bash may be a symlink only valid there).
_PICK_SHELL = f"if [ -x {SHELLS[0]} ]; then exec {SHELLS[0]} -i; else exec {SHELLS[1]} -i; fi"
