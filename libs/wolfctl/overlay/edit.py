"""`wolfctl overlay edit NAME FILE`: $EDITOR on a copy of FILE, uploaded when saved changed
(`--from PATH`, or `--from -` for stdin, uploads that instead). Editing a shipped overlay makes
a site copy of it first. A concurrent change in between is refused, not overwritten."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path, PurePosixPath

import click

from libs.common.apiclient.overlayd import file_path
from libs.common.errors import NotFound
from libs.wolfctl.context import run
from libs.wolfctl.overlay.client import client


async def _current(ctx: click.Context, name: str, path: str) -> tuple[bytes, str | None]:
    """The file's content and the overlay's revision (ETag); empty for a new file."""
    async with client(ctx) as api:
        try:
            resp = await api.request("GET", file_path(name, path))
        except NotFound as err:
            if err.field != "path":
                raise  # no such overlay
            return b"", None
        return resp.content, resp.headers.get("ETag")


async def _upload(
    ctx: click.Context, name: str, path: str, content: bytes, etag: str | None, mode: str | None
) -> None:
    async with client(ctx) as api:
        await api.request(
            "PUT",
            file_path(name, path),
            content=content,
            params={"mode": mode} if mode else None,
            headers={"If-Match": etag} if etag else None,
        )


def _edited(original: bytes, path: str) -> bytes:
    # The same suffix, so the editor picks the right syntax (`.j2`, `.conf.j2`).
    suffix = "".join(PurePosixPath(path).suffixes[-2:])
    with tempfile.TemporaryDirectory(prefix="wolfctl-edit-") as folder:
        copy = Path(folder) / f"overlay{suffix}"
        copy.write_bytes(original)
        click.edit(filename=str(copy))
        return copy.read_bytes()


@click.command("edit", help="Edit FILE of overlay NAME in $EDITOR (a new FILE starts empty).")
@click.argument("name")
@click.argument("path", metavar="FILE")
@click.option("--from", "source", metavar="PATH", help="upload PATH (- for stdin), no editor")
@click.option("-m", "--mode", help="set the file's mode (octal) too")
@click.pass_context
def command(ctx: click.Context, name: str, path: str, source: str | None, mode: str | None) -> None:
    original, etag = run(_current(ctx, name, path))
    if source == "-":
        content = sys.stdin.buffer.read()
    elif source is not None:
        content = Path(source).read_bytes()
    else:
        content = _edited(original, path)
    if content == original and mode is None:
        click.echo(f"{name}/{path}: no change", err=True)
        return
    run(_upload(ctx, name, path, content, etag, mode))
