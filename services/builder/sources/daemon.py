"""`docker-daemon:` sources: the image saved from the local Docker engine (the `docker`
package) to a docker-archive tar, which then goes the way of any docker-archive."""

from __future__ import annotations

import os
from pathlib import Path

import docker
import docker.errors

from libs.common.errors import NotFound, WolfpackError
from services.builder.sources.progress import ProgressReporter

DEFAULT_ENGINE = "unix:///var/run/docker.sock"


def engine_url() -> str:
    return os.environ.get("DOCKER_HOST") or DEFAULT_ENGINE


def save_image(name: str, dest: Path, reporter: ProgressReporter) -> None:
    """Write `docker save NAME` to `dest` (blocking; run it in a thread)."""
    try:
        client = docker.from_env()
    except docker.errors.DockerException as err:
        raise WolfpackError(f"no Docker engine at {engine_url()}: {err}", field="source") from None
    try:
        try:
            image = client.images.get(name)
        except docker.errors.ImageNotFound:
            raise NotFound(
                f"docker-daemon:{name}: no such image in the engine", field="source"
            ) from None
        except docker.errors.DockerException as err:
            raise WolfpackError(f"docker-daemon:{name}: {err}", field="source") from None
        done = 0
        with open(dest, "wb") as out:
            for chunk in image.save(named=True):
                out.write(chunk)
                done += len(chunk)
                reporter.report("fetch", done)
    finally:
        client.close()
