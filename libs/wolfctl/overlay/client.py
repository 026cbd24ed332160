"""wolfctl's overlayd client: the endpoint resolved from the environment and the global
`--token` (libs/common/apiclient/config.py)."""

from __future__ import annotations

import os

import click

from libs.common.apiclient.config import resolve
from libs.common.apiclient.overlayd import OverlaydClient
from libs.wolfctl.context import globals_of


def client(ctx: click.Context) -> OverlaydClient:
    return OverlaydClient(resolve(os.environ, service="overlayd", token=globals_of(ctx).token))
