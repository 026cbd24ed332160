"""`wolfctl image build NAME`: build the image again from its rootfs (after `shell`/`exec`)."""

from __future__ import annotations

import click

from libs.common.apiclient.builder import BuilderClient
from libs.common.models.image import ImageJob, validate_image_name
from libs.wolfctl.context import output_option, run
from libs.wolfctl.image.jobs import StartJob, run_job


def start_build(name: str) -> StartJob:
    async def start(api: BuilderClient) -> ImageJob:
        return await api.post(f"/images/{name}:build", {}, ImageJob)

    return start


@click.command("build", help="Build image NAME again from its rootfs, following its progress.")
@click.argument("name")
@click.option("--no-wait", is_flag=True, help="start the job and return at once")
@output_option
@click.pass_context
def command(ctx: click.Context, name: str, no_wait: bool, output: str | None) -> None:
    validate_image_name(name)
    run(run_job(ctx, name, start_build(name), wait=not no_wait, output=output))
