"""Starting a builder job from the CLI and waiting for it: the verbs `import`, `build`,
`shell` and `exec` share this."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

import click

from libs.common.apiclient.builder import BuilderClient
from libs.common.apiclient.config import nats_url, resolve
from libs.common.models.image import ImageDetails, ImageJob
from libs.wolfctl.context import globals_of, output_format
from libs.wolfctl.image.follow import ImageEvents, follow
from libs.wolfctl.image.view import summary
from libs.wolfctl.output import dump, echo

StartJob = Callable[[BuilderClient], Awaitable[ImageJob]]


def client(ctx: click.Context) -> BuilderClient:
    return BuilderClient(resolve(os.environ, service="builder", token=globals_of(ctx).token))


async def run_job(
    ctx: click.Context,
    name: str,
    start: StartJob,
    *,
    wait: bool = True,
    output: str | None = None,
) -> None:
    """Start a job with `start`; unless `wait` is off, follow it and print the result."""
    fmt = output_format(ctx, output)
    async with client(ctx) as api:
        # Subscribed before the job starts, so its first events are not missed.
        events = await ImageEvents.open(nats_url(os.environ), name) if wait else None
        try:
            job = await start(api)
        except BaseException:
            if events is not None:
                await events.close()
            raise
        if not wait:
            echo(dump(job, fmt) if fmt != "table" else f"{job.kind} job {job.id} started\n")
            return
        details = await follow(api, events, job)
    report(details, fmt)


def report(details: ImageDetails, fmt: str) -> None:
    if fmt != "table":
        echo(dump(details, fmt))
    else:
        click.echo(summary(details))
