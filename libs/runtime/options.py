"""Options several `wolfpack` commands share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from libs.common import names


def data_option(help: str, *, exists: bool = False) -> Callable[[Any], Any]:
    """`--data DIR` ($WOLFPACK_DATA, default ./var/wolfpack); `exists`: it must exist already."""
    return click.option(
        "--data",
        envvar="WOLFPACK_DATA",
        default=names.DEFAULT_DATA,
        show_default=True,
        type=click.Path(file_okay=False, exists=exists),
        help=help,
    )
