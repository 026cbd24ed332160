"""What the root command hands its verbs: the global options, and how to reach the registry."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

import click
import msgspec

from libs.common.apiclient.config import ApiConfig, resolve

T = TypeVar("T")

FORMATS = ("table", "json", "yaml")


class Globals(msgspec.Struct, kw_only=True):
    """`wolfctl [--url URL] [--token TOKEN] [-o FORMAT]`, as given on the command line."""

    url: str | None = None
    token: str | None = None
    output: str = "table"

    def api_config(self) -> ApiConfig:
        return resolve(os.environ, url=self.url, token=self.token)


def globals_of(ctx: click.Context) -> Globals:
    obj = ctx.find_object(Globals)
    return obj if obj is not None else Globals()


def output_format(ctx: click.Context, local: str | None = None) -> str:
    """A verb's own `-o` wins over the global one."""
    return local or globals_of(ctx).output


def output_option(fn: Any) -> Any:
    """`-o/--output` on a verb, so `wolfctl node list -o json` works as well."""
    return click.option(
        "-o",
        "--output",
        type=click.Choice(FORMATS),
        default=None,
        help="output format (default: the global -o, else table)",
    )(fn)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)
