"""`wolfctl image`: gathers the image verbs, one module each."""

from __future__ import annotations

import click

from libs.wolfctl.groups import NounGroup
from libs.wolfctl.image.build import command as build_command
from libs.wolfctl.image.delete import command as delete_command
from libs.wolfctl.image.exec_ import command as exec_command
from libs.wolfctl.image.import_ import command as import_command
from libs.wolfctl.image.list import command as list_command
from libs.wolfctl.image.shell import command as shell_command
from libs.wolfctl.image.show import command as show_command


@click.group("image", cls=NounGroup)
def image() -> None:
    """Import, build, inspect, change (shell/exec) and delete node images."""


for _command in (
    import_command,
    list_command,
    show_command,
    build_command,
    delete_command,
    shell_command,
    exec_command,
):
    image.add_command(_command)
