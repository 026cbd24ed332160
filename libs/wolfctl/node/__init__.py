"""`wolfctl node`: gathers the node verbs, one module each."""

from __future__ import annotations

import click

from libs.wolfctl.groups import NounGroup
from libs.wolfctl.node.add import command as add_command
from libs.wolfctl.node.delete import command as delete_command
from libs.wolfctl.node.export import command as export_command
from libs.wolfctl.node.import_ import command as import_command
from libs.wolfctl.node.list import command as list_command
from libs.wolfctl.node.set import command as set_command
from libs.wolfctl.node.status import command as status_command
from libs.wolfctl.node.unset import command as unset_command


@click.group("node", cls=NounGroup)
def node() -> None:
    """Add, change, list and delete nodes; import and export nodes.conf."""


for _command in (
    add_command,
    set_command,
    unset_command,
    list_command,
    delete_command,
    import_command,
    export_command,
    status_command,
):
    node.add_command(_command)
