"""`wolfctl image import SOURCE NAME`: import an image and build it, following its progress."""

from __future__ import annotations

import os
import re

import click

from libs.common.apiclient.builder import BuilderClient
from libs.common.models.image import ImageJob, ImportRequest
from libs.wolfctl.context import output_option, run
from libs.wolfctl.image.jobs import run_job

_LOCAL_TRANSPORTS = ("oci:", "oci-archive:", "docker-archive:")
_TRANSPORT = re.compile(r"[a-z][a-z0-9+.-]*:")


def absolute_source(text: str) -> str:
    """Local paths made absolute: the builder resolves them from its own folder, not ours."""
    for transport in _LOCAL_TRANSPORTS:
        if text.startswith(transport):
            path, sep, rest = text.removeprefix(transport).partition(":")
            return transport + (os.path.abspath(path) if path else "") + sep + rest
    if _TRANSPORT.match(text) and not text.startswith(("./", "/")):
        return text  # docker://, docker-daemon: (or a typo the builder names)
    return os.path.abspath(text) if text else text


@click.command(
    "import",
    help="Import SOURCE as image NAME and build it. SOURCE: docker://HOST/REPO[:TAG|@DIGEST], "
    "oci:DIR[:TAG], oci-archive:PATH, docker-archive:PATH, docker-daemon:NAME, a chroot "
    "directory or a rootfs tarball (.tar, .tar.gz, .tar.zst). Local paths are read by the "
    "builder, on its machine.",
)
@click.argument("source")
@click.argument("name")
@click.option("--insecure", is_flag=True, help="plain-HTTP registry or unverified TLS")
@click.option("--creds", metavar="USER:PASSWORD", help="registry credentials")
@click.option("--platform", metavar="OS/ARCH", help="platform to pick from an image index")
@click.option("--kernelversion", metavar="VERSION", help="boot this kernel version of the image")
@click.option("--zstd", is_flag=True, help="compress the image with zstd instead of gzip")
@click.option("--no-wait", is_flag=True, help="start the job and return at once")
@output_option
@click.pass_context
def command(
    ctx: click.Context,
    source: str,
    name: str,
    insecure: bool,
    creds: str | None,
    platform: str | None,
    kernelversion: str | None,
    zstd: bool,
    no_wait: bool,
    output: str | None,
) -> None:
    request = ImportRequest(
        name=name,
        source=absolute_source(source),
        insecure=insecure,
        creds=creds,
        platform=platform,
        kernelversion=kernelversion,
        compression="zstd" if zstd else "gzip",
    )

    async def start(api: BuilderClient) -> ImageJob:
        return await api.post("/images", request, ImageJob)

    run(run_job(ctx, name, start, wait=not no_wait, output=output))
