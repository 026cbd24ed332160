"""`wolfctl overlay import NAME DIR [DEST]` copies a directory tree into the overlay (modes
and owners kept); `wolfctl overlay import NAME FILE [DEST]` one file (DEST default: its name).
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path
from urllib.parse import quote

import click

from libs.common.apiclient.client import decode
from libs.common.apiclient.overlayd import file_path
from libs.common.errors import Invalid
from libs.common.models.overlay_api import OverlaySummary
from libs.wolfctl.context import run
from libs.wolfctl.overlay.client import client


def tar_of(folder: Path) -> bytes:
    """The tree below `folder` as a gzip'd tar (symlinks kept, numeric owners)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for entry in sorted(folder.iterdir()):
            tar.add(entry, arcname=entry.name, recursive=True)
    return buffer.getvalue()


async def _import_tree(ctx: click.Context, name: str, folder: Path, dest: str) -> OverlaySummary:
    archive = tar_of(folder)
    async with client(ctx) as api:
        resp = await api.request(
            "POST",
            f"/overlays/{quote(name, safe='')}/import",
            content=archive,
            content_type="application/x-tar",
            params={"dest": dest} if dest else None,
        )
        return decode(resp, OverlaySummary)


async def _import_file(
    ctx: click.Context, name: str, data: bytes, dest: str, bits: str
) -> OverlaySummary:
    async with client(ctx) as api:
        resp = await api.request("PUT", file_path(name, dest), content=data, params={"mode": bits})
        return decode(resp, OverlaySummary)


@click.command("import", help="Import directory DIR (below DEST) or FILE (as DEST) into NAME.")
@click.argument("name")
@click.argument("source", type=click.Path(exists=True, path_type=Path), metavar="DIR|FILE")
@click.argument("dest", required=False, default="")
@click.option("-m", "--mode", help="mode of an imported FILE (default: the file's own)")
@click.pass_context
def command(ctx: click.Context, name: str, source: Path, dest: str, mode: str | None) -> None:
    if source.is_dir():
        if mode:
            raise Invalid("--mode is for a single file; a directory keeps its files' modes")
        done = run(_import_tree(ctx, name, source, dest))
    else:
        bits = mode or f"{stat.S_IMODE(os.stat(source).st_mode):04o}"
        done = run(_import_file(ctx, name, source.read_bytes(), dest or source.name, bits))
    click.echo(f"overlay {done.name}: {done.entries} entries (revision {done.revision})")
