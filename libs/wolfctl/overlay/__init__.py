"""`wolfctl overlay`: gathers the overlay verbs, one module each."""

from __future__ import annotations

import click

from libs.wolfctl.groups import NounGroup
from libs.wolfctl.overlay.build import command as build_command
from libs.wolfctl.overlay.chmod import command as chmod_command
from libs.wolfctl.overlay.create import command as create_command
from libs.wolfctl.overlay.delete import command as delete_command
from libs.wolfctl.overlay.edit import command as edit_command
from libs.wolfctl.overlay.import_ import command as import_command
from libs.wolfctl.overlay.list import command as list_command
from libs.wolfctl.overlay.mkdir import command as mkdir_command
from libs.wolfctl.overlay.show import command as show_command


@click.group("overlay", cls=NounGroup)
def overlay() -> None:
    """List, show, render, create, import, edit and delete overlays; build them."""


for _command in (
    list_command,
    show_command,
    create_command,
    import_command,
    edit_command,
    mkdir_command,
    chmod_command,
    delete_command,
    build_command,
):
    overlay.add_command(_command)
