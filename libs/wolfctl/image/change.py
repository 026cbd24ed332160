"""What `shell` and `exec` share: run a command in the image's rootfs, then rebuild it."""

from __future__ import annotations

from pathlib import Path

import click

from libs.common.errors import WolfpackError
from libs.wolfctl.context import run
from libs.wolfctl.image.build import start_build
from libs.wolfctl.image.chroot import run_in_image
from libs.wolfctl.image.jobs import run_job
from libs.wolfctl.image.show import fetch_image


def change_image(ctx: click.Context, name: str, argv: list[str], *, build: bool) -> None:
    image = run(fetch_image(ctx, name))
    if image.job is not None and image.job.state in ("queued", "running"):
        raise WolfpackError(
            f"image {name} is busy with {image.job.kind} job {image.job.id}; wait for it to end"
        )
    code = run_in_image(name, Path(image.rootfs), argv)
    if code != 0:
        raise WolfpackError(
            f"the command exited with {code}; image {name} not rebuilt "
            f"(`wolfctl image build {name}` rebuilds it as it is now)"
        )
    if build:
        run(run_job(ctx, name, start_build(name)))
