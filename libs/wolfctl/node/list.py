"""`wolfctl node list [RANGE...]`: wwctl's table formats, or the objects as JSON/YAML.

The default table reads the stored nodes (one fast request); the other tables read the merged
view, so they show what each node will boot with, inherited values included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import click
import msgspec

from libs.common.apiclient.client import Registry
from libs.common.models.api import MergedNode
from libs.common.models.node import Node
from libs.wolfctl.context import globals_of, output_format, output_option, run
from libs.wolfctl.fieldview import FieldLister
from libs.wolfctl.kinds import NODE, expand_names, list_objects
from libs.wolfctl.output import dump, echo, table

Rows = Iterable[tuple[str, ...]]


class View(msgspec.Struct, frozen=True):
    headers: tuple[str, ...]
    rows: Callable[..., Rows]
    merged: bool


def _summary(nodes: list[Node]) -> Rows:
    for n in nodes:
        addrs = (n.network_devices[k].ipaddr for k in sorted(n.network_devices))
        yield n.name, ",".join(n.profiles), ", ".join(a for a in addrs if a)


def _long(merged: list[MergedNode]) -> Rows:
    for m in merged:
        n = m.node
        overlays = ",".join(n.system_overlay) + "/" + ",".join(n.runtime_overlay)
        version = n.kernel.version if n.kernel else None
        yield n.name, version or "", n.image or "", overlays


def _network(merged: list[MergedNode]) -> Rows:
    for m in merged:
        n = m.node
        if not n.network_devices:
            yield n.name, "", "", "", "", ""
        for netname in sorted(n.network_devices):
            d = n.network_devices[netname]
            yield (
                n.name,
                netname,
                d.hwaddr or "",
                d.ipaddr or "",
                d.gateway or "",
                d.device or "",
            )


def _ipmi(merged: list[MergedNode]) -> Rows:
    for m in merged:
        n = m.node
        i = n.ipmi
        if i is None:
            yield n.name, "", "", "", ""
        else:
            yield n.name, i.ipaddr or "", i.port or "", i.username or "", i.interface or ""


def _all(merged: list[MergedNode], reveal: bool = False) -> Rows:
    lister = FieldLister(reveal=reveal)
    for m in merged:
        for field, source, value in lister.rows(m.node, m.provenance):
            yield m.node.name, field, source, value


VIEWS: dict[str, View] = {
    "summary": View(("NODE NAME", "PROFILES", "NETWORK"), _summary, merged=False),
    "long": View(("NODE NAME", "KERNEL VERSION", "IMAGE", "OVERLAYS (S/R)"), _long, merged=True),
    "net": View(("NODE", "NAME", "HWADDR", "IPADDR", "GATEWAY", "DEVICE"), _network, merged=True),
    "ipmi": View(
        ("NODE", "IPMI IPADDR", "IPMI PORT", "IPMI USERNAME", "IPMI INTERFACE"), _ipmi, merged=True
    ),
    "all": View(("NODE", "FIELD", "PROFILE", "VALUE"), _all, merged=True),
}


async def _fetch(
    ctx: click.Context, merged: bool, names: list[str] | None, secrets: bool
) -> list[Any]:
    async with Registry(globals_of(ctx).api_config()) as api:
        return await list_objects(api, NODE, merged=merged, names=names, secrets=secrets)


SECRETS_HELP = "show the IPMI password and asset key instead of a mask (needs the API token)"


@click.command("list", help="List nodes, all or those named by RANGE (e.g. n[01-05]).")
@click.argument("ranges", nargs=-1)
@click.option("-a", "--all", "all_", is_flag=True, help="every field, with where it came from")
@click.option("-l", "--long", "long_", is_flag=True, help="kernel, image and overlays")
@click.option("-n", "--net", is_flag=True, help="network devices")
@click.option("-i", "--ipmi", is_flag=True, help="IPMI settings")
@click.option("--secrets", is_flag=True, help=SECRETS_HELP)
@output_option
@click.pass_context
def command(
    ctx: click.Context,
    ranges: tuple[str, ...],
    all_: bool,
    long_: bool,
    net: bool,
    ipmi: bool,
    secrets: bool,
    output: str | None,
) -> None:
    # Like wwctl, the first view asked for wins.
    name = next(
        (v for v, on in (("all", all_), ("ipmi", ipmi), ("net", net), ("long", long_)) if on),
        "summary",
    )
    view = VIEWS[name]
    fmt = output_format(ctx, output)
    # JSON/YAML print the stored objects; with -a, the merged view and its provenance.
    merged = all_ if fmt != "table" else view.merged
    names = expand_names(ranges) if ranges else None
    objects = run(_fetch(ctx, merged, names, secrets))
    if fmt != "table":
        echo(dump(objects, fmt))
    elif name == "all":
        echo(table(view.headers, _all(objects, reveal=secrets)))
    else:
        echo(table(view.headers, view.rows(objects)))
