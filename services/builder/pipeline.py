"""The work of a job on disk and in the store, without KV or events: import a source into a
job's staging folder, find and store its kernel, build the image, and put the new rootfs and
chunk index in place (undoably, until KV names the new image).

Everything a job makes lives in its staging folder until `install`: a failure at any step
leaves the image's folder as it was, and the blobs already stored are whole (they stay for gc).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from pathlib import Path

import msgspec

from libs.common.errors import NotFound
from libs.common.models.image import Compression, RunConfig
from libs.common.store.cas import ContentStore
from services.builder.jobs import ProgressFeed
from services.builder.kernel import put_kernel
from services.builder.layout import Layout, remove_tree
from services.builder.sources import (
    FetchOptions,
    ImportOptions,
    ImportResult,
    Source,
    import_rootfs,
)
from services.builder.sources.tree import swap_into_place
from services.builder.vnfs import BuildResult, build_image


class Built(msgspec.Struct, kw_only=True):
    """What a job made: kernel and image in the store, and (for an import) what was read."""

    kernel_digest: str
    kernel_version: str
    build: BuildResult
    imported: ImportResult | None = None

    def run_config(self) -> RunConfig:
        if self.imported is None:
            return RunConfig()
        config = self.imported.config
        return RunConfig(
            env=config.env,
            entrypoint=config.entrypoint,
            cmd=config.cmd,
            working_dir=config.working_dir,
            user=config.user,
        )


class Staging(msgspec.Struct, kw_only=True):
    """A job's folder: the new rootfs (imports only) and the new chunk index."""

    folder: Path

    @property
    def rootfs(self) -> Path:
        return self.folder / "rootfs"

    @property
    def index(self) -> Path:
        return self.folder / "chunks.json"


async def import_and_build(
    source: Source,
    staging: Staging,
    layout: Layout,
    store: ContentStore,
    feed: ProgressFeed,
    *,
    name: str,
    fetch: FetchOptions,
    kernelversion: str | None,
    compression: Compression,
) -> Built:
    """Import `source` into the staging folder and build it; nothing of the image's changes."""
    await _copy_index(layout.chunk_index(name), staging.index)
    imported = await import_rootfs(
        source,
        staging.rootfs,
        staging_root=layout.staging,
        fetch=fetch,
        # A chroot source must not hold wolfpack's own data (the images among it).
        options=ImportOptions(forbidden=(str(layout.data),)),
        on_progress=feed.on_import,
    )
    built = await _build(staging.rootfs, staging.index, store, feed, kernelversion, compression)
    built.imported = imported
    return built


async def rebuild(
    rootfs: Path,
    staging: Staging,
    layout: Layout,
    store: ContentStore,
    feed: ProgressFeed,
    *,
    name: str,
    kernelversion: str | None,
    compression: Compression,
) -> Built:
    """Build the image again from its rootfs on disk (changed by `image exec`, say)."""
    if not await asyncio.to_thread(rootfs.is_dir):
        raise NotFound(f"image {name!r} has no rootfs at {rootfs}; import it again", field="name")
    await _copy_index(layout.chunk_index(name), staging.index)
    return await _build(rootfs, staging.index, store, feed, kernelversion, compression)


async def _build(
    rootfs: Path,
    index: Path,
    store: ContentStore,
    feed: ProgressFeed,
    kernelversion: str | None,
    compression: Compression,
) -> Built:
    feed.report("kernel", message="looking for the kernel in /boot and /lib/modules")
    kernel_digest, kernel_version = await put_kernel(rootfs, store, kernelversion)
    size = store.size(kernel_digest)
    feed.report("kernel", bytes_done=size, bytes_total=size, message=f"kernel {kernel_version}")
    build = await build_image(
        rootfs, store, index_path=index, compression=compression, on_progress=feed.on_build
    )
    return Built(kernel_digest=kernel_digest, kernel_version=kernel_version, build=build)


async def _copy_index(current: Path, staged: Path) -> None:
    """Start from the image's chunk index, so unchanged chunks are reused."""

    def copy() -> None:
        if current.is_file():
            shutil.copyfile(current, staged)

    await asyncio.to_thread(copy)


class Installed:
    """The image folder after `install`, with what it replaced kept until `commit` or `undo`."""

    def __init__(self, layout: Layout, name: str, staging: Staging, *, new_rootfs: bool) -> None:
        self._layout = layout
        self._name = name
        self._staging = staging
        self._new_rootfs = new_rootfs
        self._had_rootfs = False
        self._had_index = False

    @property
    def _old_rootfs(self) -> Path:
        return self._staging.folder / "old-rootfs"

    @property
    def _old_index(self) -> Path:
        return self._staging.folder / "old-chunks.json"

    def install(self) -> None:
        """Swap the staged rootfs (for an import) and chunk index into the image's folder."""
        rootfs, index = self._layout.rootfs(self._name), self._layout.chunk_index(self._name)
        rootfs.parent.mkdir(parents=True, exist_ok=True)
        self._had_index = index.is_file()
        if self._had_index:
            os.link(index, self._old_index)
        if self._new_rootfs:
            self._had_rootfs = rootfs.exists()
            swap_into_place(self._staging.rootfs, rootfs, self._old_rootfs)
        os.replace(self._staging.index, index)

    def undo(self) -> None:
        """Put back what `install` replaced (KV could not be written)."""
        rootfs, index = self._layout.rootfs(self._name), self._layout.chunk_index(self._name)
        if self._had_index:
            os.replace(self._old_index, index)
        else:
            index.unlink(missing_ok=True)
        if self._new_rootfs:
            if self._had_rootfs:
                swap_into_place(self._old_rootfs, rootfs, self._staging.rootfs)
            else:
                os.rename(rootfs, self._staging.rootfs)
                with contextlib.suppress(OSError):  # empty unless it holds something else
                    rootfs.parent.rmdir()


def discard(staging: Staging) -> None:
    """Remove a job's folder and all in it (the replaced rootfs too, after an install)."""
    remove_tree(staging.folder)
