"""Verbs that nodes and profiles share: set, unset, delete. Each noun's module builds its own."""

from __future__ import annotations

from typing import Any

import click
import hostlist
from click.core import ParameterSource

from libs.common.apiclient.client import Registry
from libs.wolfctl.batch import for_each
from libs.wolfctl.context import globals_of, run
from libs.wolfctl.flags import ModelFlags, model_flags, selector_flag, set_options, unset_options
from libs.wolfctl.kinds import Kind, delete_object, expand_names, patch_object
from libs.wolfctl.patches import set_patch, unset_patch


async def _patch_each(
    ctx: click.Context, kind: Kind[Any], names: list[str], patch: dict[str, Any]
) -> None:
    async with Registry(globals_of(ctx).api_config()) as api:
        await for_each(names, lambda name: patch_object(api, kind, name, patch))


def make_set(kind: Kind[Any]) -> click.Command:
    flags = model_flags(kind.model)

    @click.command(
        "set",
        help=f"Change fields of the {kind.collection} named by NAMES (hostlist ranges, "
        f"e.g. n[01-20]). Only the flags given change; see `unset` to clear a field.",
    )
    @click.argument("names", nargs=-1, required=True)
    @set_options(flags)
    @click.pass_context
    def set_(ctx: click.Context, names: tuple[str, ...], **params: Any) -> None:
        patch = set_patch(flags, params)
        if not patch:
            raise click.UsageError("nothing to set: give at least one field flag")
        run(_patch_each(ctx, kind, expand_names(names), patch))

    return set_


def explicit_selectors(ctx: click.Context, flags: ModelFlags) -> list[str]:
    """Scopes whose selector (`--netname`) was typed, not defaulted."""
    return [
        scope
        for scope in flags.selectors
        if ctx.get_parameter_source(selector_flag(scope)) == ParameterSource.COMMANDLINE
    ]


def make_unset(kind: Kind[Any]) -> click.Command:
    flags = model_flags(kind.model)

    @click.command(
        "unset",
        help=f"Clear fields of the {kind.collection} named by NAMES, so they inherit again "
        f"(from profiles, or the default). Takes the flag names of `set`, without values.",
    )
    @click.argument("names", nargs=-1, required=True)
    @unset_options(flags)
    @click.pass_context
    def unset(ctx: click.Context, names: tuple[str, ...], **params: Any) -> None:
        patch = unset_patch(flags, params, explicit_selectors(ctx, flags))
        if not patch:
            raise click.UsageError("nothing to unset: give at least one field flag")
        run(_patch_each(ctx, kind, expand_names(names), patch))

    return unset


async def _delete_each(ctx: click.Context, kind: Kind[Any], names: list[str]) -> None:
    async with Registry(globals_of(ctx).api_config()) as api:
        await for_each(names, lambda name: delete_object(api, kind, name))


def make_delete(kind: Kind[Any]) -> click.Command:
    @click.command("delete", help=f"Delete the {kind.collection} named by NAMES.")
    @click.argument("names", nargs=-1, required=True)
    @click.option("-y", "--yes", is_flag=True, help="do not ask for confirmation")
    @click.pass_context
    def delete(ctx: click.Context, names: tuple[str, ...], yes: bool) -> None:
        targets = expand_names(names)
        if not yes:
            shown = hostlist.collect_hostlist(targets)
            click.confirm(f"Delete {kind.count(len(targets))} ({shown})?", abort=True, err=True)
        run(_delete_each(ctx, kind, targets))

    return delete
