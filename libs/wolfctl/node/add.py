"""`wolfctl node add RANGE [flags]`: one POST /nodes:bulk for the whole range.

The registry counts `--ipaddr` and `--ipmiaddr` up per node. Which flags become BulkAdd's own
top-level fields is read from BulkAdd itself: each field it adds to Node takes the value of the
flag of the same name (`ipaddr`, `ipmiaddr`, `netname`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click
import hostlist
import msgspec

from libs.common.apiclient.client import Registry
from libs.common.models.api import BulkAdd, BulkResult
from libs.common.models.fields import field_extras
from libs.common.models.node import Node
from libs.wolfctl.context import globals_of, output_format, run
from libs.wolfctl.flags import ModelFlags, model_flags, selector_flag, set_options
from libs.wolfctl.output import dump, echo
from libs.wolfctl.patches import concrete_path, pop_path, selected_keys, set_patch

FLAGS = model_flags(Node)
# The range is the command's argument, not a flag.
RANGE_FIELD = "names"


def bulk_body(flags: ModelFlags, names: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The BulkAdd body: the node template from the flags, then BulkAdd's own fields."""
    body = set_patch(flags, params)
    keys = selected_keys(flags, params)
    selectors = {selector_flag(scope): keys[scope] for scope in flags.selectors}
    node_fields = {f.name for f in msgspec.structs.fields(Node)}
    extras = field_extras(BulkAdd)
    for f in msgspec.structs.fields(BulkAdd):
        if f.name in node_fields or f.name == RANGE_FIELD:
            continue
        flag = extras[f.name].get("flag", f.name)
        spec = flags.by_flag(flag)
        if flag in selectors:
            body[f.name] = selectors[flag]
        elif spec is not None:
            value = pop_path(body, concrete_path(spec.path, keys))
            if value is not None:
                body[f.name] = value
    body[RANGE_FIELD] = names
    return body


async def _add(ctx: click.Context, body: dict[str, Any]) -> BulkResult:
    async with Registry(globals_of(ctx).api_config()) as api:
        return await api.send("POST", "/nodes:bulk", body, BulkResult)


@click.command(
    "add",
    help="Add the nodes named by RANGE (e.g. n[001-100]) with the fields given. "
    "--ipaddr and --ipmiaddr are the first node's addresses; each further node gets the next.",
)
@click.argument("ranges", nargs=-1, required=True)
@set_options(FLAGS, create=True)
@click.pass_context
def command(ctx: click.Context, ranges: tuple[str, ...], **params: Any) -> None:
    names = ",".join(ranges)
    try:
        hostlist.expand_hostlist(names)
    except hostlist.BadHostlist as e:
        raise click.BadParameter(f"{names!r}: {e}", param_hint="RANGE") from None
    result = run(_add(ctx, bulk_body(FLAGS, names, params)))
    fmt = output_format(ctx)
    if fmt != "table":
        echo(dump(result, fmt))
