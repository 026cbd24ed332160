"""Images as text: the one-line summary after a build, the rows of `show` and `list`."""

from __future__ import annotations

import time
from collections.abc import Iterable

from libs.common.models.image import ImageDetails, ImageMeta
from libs.common.terminal.sizes import human_bytes

LIST_HEADERS = ("IMAGE NAME", "KERNEL VERSION", "SIZE", "FILES", "BUILT", "SOURCE")


def when(stamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp)) if stamp else ""


def short(digest: str | None) -> str:
    return f"sha256:{digest[:12]}" if digest else ""


def summary(image: ImageDetails) -> str:
    reused = f"{image.chunks_reused} of {image.chunks_total} chunks reused"
    return (
        f"image {image.name} built: {human_bytes(image.size)} ({short(image.image_digest)}), "
        f"kernel {image.kernel_version}, {image.files} files, {reused}, "
        f"{image.build_seconds:.2f} s"
    )


def list_rows(images: Iterable[ImageMeta]) -> Iterable[tuple[str, ...]]:
    for image in images:
        yield (
            image.name,
            image.kernel_version,
            human_bytes(image.size),
            str(image.files),
            when(image.built_at),
            image.source,
        )


def show_rows(image: ImageDetails) -> list[tuple[str, str]]:
    job = image.job
    state = ""
    if job is not None:
        state = f"{job.kind} {job.id}: {job.state}" + (f" ({job.reason})" if job.reason else "")
    return [
        ("name", image.name),
        ("source", image.source),
        ("source digest", image.source_digest or ""),
        ("platform", image.platform or ""),
        ("image digest", image.image_digest),
        ("size", f"{human_bytes(image.size)} ({image.size} bytes, {image.compression})"),
        ("files", str(image.files)),
        ("kernel version", image.kernel_version),
        ("kernel digest", image.kernel_digest),
        ("pinned kernel", image.kernelversion or ""),
        ("built", when(image.built_at)),
        ("build", f"{image.build_seconds:.2f} s, {image.chunks_reused} of "
                  f"{image.chunks_total} chunks reused"),
        ("rootfs", image.rootfs),
        ("last job", state),
        ("revision", str(image.revision)),
    ]  # fmt: skip
