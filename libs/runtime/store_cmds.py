"""`wolfpack gc` and `wolfpack fsck`: store hygiene, run by the administrator beside the stack.

gc reads every reference (store_refs.py: fail closed), then removes unreferenced blobs older
than the grace period and stale temporary files (libs/common/store/collect.py), then asks
overlayd to render every node afresh: it remembers archives by content and would otherwise name
a removed one again without storing it. fsck hashes every blob again (libs/common/store/fsck.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Final

import click
import msgspec

from libs.common.apiclient.client import decode
from libs.common.apiclient.config import ENV_DATA, resolve
from libs.common.apiclient.overlayd import OverlaydClient
from libs.common.errors import WolfpackError
from libs.common.logs import setup_logging
from libs.common.models.overlay_api import WaveReport
from libs.common.store.cas import ContentStore
from libs.common.store.collect import DEFAULT_GRACE, GcReport, plan_gc, sweep
from libs.common.store.files import iter_blobs, iter_temps
from libs.common.store.fsck import (
    FsckReport,
    check_store,
    find_missing,
    name_referrers,
    quarantine_all,
)
from libs.runtime.options import data_option
from libs.runtime.store_progress import StoreProgress
from libs.runtime.store_refs import ReferencesUnavailable, nats_url_for, read_references
from libs.runtime.store_text import fsck_text, gc_text

OUTPUTS: Final = ("text", "json")
# fsck names referrers if it can; it does not wait long for them.
FSCK_REFERENCES_WITHIN: Final = 60.0

_data_option = data_option("Data directory (the store is DATA/cas).")
_nats_option = click.option(
    "--nats",
    envvar="WOLFPACK_NATS",
    default=None,
    metavar="URL",
    help="NATS server URL [default: the running stack's, from DATA/endpoints.json].",
)
_output_option = click.option(
    "-o", "--output", type=click.Choice(OUTPUTS), default="text", show_default=True
)


@click.command("gc")
@_data_option
@_nats_option
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=DEFAULT_GRACE,
    show_default=True,
    metavar="SECONDS",
    help="Keep every blob stored (or stored again) within this many seconds.",
)
@click.option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
@_output_option
def gc(data: str, nats: str | None, grace: float, dry_run: bool, output: str) -> None:
    """Remove blobs no boot manifest, image, site overlay or chunk index references, and
    temporary files left by crashes. Removes nothing if any reference cannot be read."""
    log = setup_logging("gc")
    try:
        report = asyncio.run(_collect(Path(data), nats, grace, dry_run, log, output))
    except ReferencesUnavailable as err:
        click.echo(f"wolfpack gc: {err.message}; nothing was removed", err=True)
        sys.exit(1)
    _print(report, output, gc_text)


@click.command("fsck")
@_data_option
@_nats_option
@click.option(
    "--quarantine",
    is_flag=True,
    help="Move corrupt blobs to DATA/cas/quarantine/ (never deleted) so they get rebuilt.",
)
@_output_option
def fsck(data: str, nats: str | None, quarantine: bool, output: str) -> None:
    """Hash every blob again; report corrupt ones and what references them. Exit status 1 if
    any blob is corrupt or a referenced one is missing."""
    log = setup_logging("fsck")
    report = asyncio.run(_check(Path(data), nats, quarantine, log, output))
    _print(report, output, fsck_text)
    if report.corrupt or report.missing:
        sys.exit(1)


async def _collect(
    data: Path, nats_url: str | None, grace: float, dry_run: bool, log: logging.Logger, output: str
) -> GcReport:
    started = time.time()  # before the references are read: what is stored later is young
    _require_data(data)
    url = nats_url_for(data, nats_url)
    log.info("reading references from NATS at %s and the chunk indexes in %s", url, data)
    references = await read_references(url, data)
    store = ContentStore(data / "cas")
    with StoreProgress(log, quiet=output == "json") as progress:
        plan = await asyncio.to_thread(
            plan_gc,
            iter_blobs(store),
            iter_temps(store),
            references,
            grace=grace,
            started=started,
            on_progress=progress,
        )
        report = await asyncio.to_thread(sweep, store, plan, dry_run=dry_run, on_progress=progress)
    if report.blobs_removed and not dry_run:
        warning = await _render_again(data, log)
        if warning is not None:
            report.warnings.append(warning)
    if report.missing:
        report.warnings.append(
            f"{len(report.missing)} referenced blobs are not in the store: run `wolfpack fsck`"
        )
    report.seconds = round(time.time() - started, 3)
    return report


async def _render_again(data: Path, log: logging.Logger) -> str | None:
    """Ask overlayd for a fresh render of every node; a warning if it could not be asked."""
    log.info("asking overlayd to render every node afresh (it may remember removed archives)")
    env = {**os.environ, ENV_DATA: str(data)}
    try:
        async with OverlaydClient(resolve(env, service="overlayd")) as api:
            wave = decode(await api.request("POST", "/overlays:build"), WaveReport)
    except WolfpackError as err:
        return (
            f"overlayd could not be asked to render again ({err.message}): run "
            "`wolfctl overlay build` now, so it stores again any archive it still names"
        )
    log.info("overlayd rendered %d nodes afresh", wave.nodes_rendered)
    return None


async def _check(
    data: Path, nats_url: str | None, quarantine: bool, log: logging.Logger, output: str
) -> FsckReport:
    _require_data(data)
    store = ContentStore(data / "cas")
    warnings: list[str] = []
    references = None
    try:
        url = nats_url_for(data, nats_url)
        references = await read_references(url, data, within=FSCK_REFERENCES_WITHIN)
    except ReferencesUnavailable as err:
        warnings.append(f"referrers unknown: {err.message}")
    with StoreProgress(log, quiet=output == "json") as progress:
        report = await check_store(store, on_progress=progress)
    report.warnings = warnings
    if references is not None:
        name_referrers(report, references)
        await asyncio.to_thread(find_missing, store, report, references)
    if quarantine:
        await asyncio.to_thread(quarantine_all, store, report)
    return report


def _require_data(data: Path) -> None:
    if not data.is_dir():
        raise click.UsageError(f"--data {data}: no such directory")


def _print(report: msgspec.Struct, output: str, as_text: Any) -> None:
    if output == "json":
        click.echo(msgspec.json.format(msgspec.json.encode(report), indent=2).decode())
    else:
        click.echo(as_text(report))
