"""`wolfctl profile`: gathers the profile verbs, one module each."""

from __future__ import annotations

import click

from libs.wolfctl.groups import NounGroup
from libs.wolfctl.profile.add import command as add_command
from libs.wolfctl.profile.delete import command as delete_command
from libs.wolfctl.profile.list import command as list_command
from libs.wolfctl.profile.set import command as set_command
from libs.wolfctl.profile.unset import command as unset_command


@click.group("profile", cls=NounGroup)
def profile() -> None:
    """Add, change, list and delete profiles."""


for _command in (add_command, set_command, unset_command, list_command, delete_command):
    profile.add_command(_command)
