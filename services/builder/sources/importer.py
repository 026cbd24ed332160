"""Importing any image source as a root file system directory: fetch, verify and extract
into a fresh staging directory, and only when all of it worked, swap it into place. A
refused or failed import leaves no partial tree anywhere and the previous one untouched."""

from __future__ import annotations

import asyncio
import errno
import shutil
import tempfile
from pathlib import Path

import msgspec

from libs.common.errors import Invalid, NotFound, WolfpackError
from services.builder.sources.chroot import check_chroot, copy_chroot
from services.builder.sources.fetch import FetchOptions, fetch_layout
from services.builder.sources.layers import LayerBlob, apply_layers
from services.builder.sources.oci import OciLayout
from services.builder.sources.oci_types import RuntimeConfig
from services.builder.sources.platform import parse_platform
from services.builder.sources.progress import ProgressCallback, ProgressReporter
from services.builder.sources.reference import (
    ChrootSource,
    Source,
    TarballSource,
    parse_source,
)
from services.builder.sources.stream import DEFAULT_MAX_BYTES, Budget
from services.builder.sources.tree import swap_into_place, tree_size


class ImportResult(msgspec.Struct, kw_only=True):
    """What an import produced. Digests are None for chroots and tarballs."""

    source: str
    manifest_digest: str | None = None  # what the reference resolved to (index or manifest)
    image_manifest_digest: str | None = None  # the chosen platform's manifest
    config_digest: str | None = None
    platform: str | None = None
    config: RuntimeConfig = msgspec.field(default_factory=RuntimeConfig)
    files: int = 0  # entries of the tree that are not directories
    bytes: int = 0  # of its regular files, each hardlinked inode once


class ImportOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Limits of an import: device nodes allowed, most bytes unpacked, and directories a
    chroot source must not contain (the DATA folder)."""

    allow_devices: bool = True
    max_bytes: int = DEFAULT_MAX_BYTES
    forbidden: tuple[str, ...] = ()


async def import_rootfs(
    source: Source | str,
    dest_dir: Path,
    *,
    staging_root: Path,
    fetch: FetchOptions | None = None,
    options: ImportOptions | None = None,
    on_progress: ProgressCallback | None = None,
) -> ImportResult:
    """Import `source` as the root file system at `dest_dir` (replaced only on success).

    `staging_root` must be on the file system of `dest_dir`; each import works in its own
    random folder below it, removed at the end whatever happens."""
    parsed = parse_source(source) if isinstance(source, str) else source
    fetch = fetch or FetchOptions()
    options = options or ImportOptions()
    parse_platform(fetch.platform)  # a bad platform fails before any work
    dest_dir = Path(dest_dir)
    await asyncio.to_thread(_prepare, staging_root, dest_dir)
    work = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="import-", dir=staging_root))
    reporter = ProgressReporter(on_progress)
    try:
        rootfs = work / "rootfs"
        result = await _materialize(parsed, rootfs, work, dest_dir, fetch, options, reporter)
        result.files, result.bytes = await reporter.run_in_thread(lambda: tree_size(rootfs))
        reporter.report("swap", result.bytes, result.bytes, result.files, force=True)
        await reporter.run_in_thread(lambda: swap_into_place(rootfs, dest_dir, work / "old"))
        return result
    except OSError as err:
        if err.errno == errno.ENOSPC:
            raise WolfpackError(
                f"no space left on the device of {staging_root} while importing {parsed.text()}"
            ) from err
        raise
    finally:
        await asyncio.shield(asyncio.to_thread(shutil.rmtree, work, ignore_errors=True))


def _prepare(staging_root: Path, dest_dir: Path) -> None:
    staging_root.mkdir(parents=True, exist_ok=True)
    dest_dir.parent.mkdir(parents=True, exist_ok=True)
    if staging_root.stat().st_dev != dest_dir.parent.stat().st_dev:
        raise Invalid(
            f"staging folder {staging_root} is not on the file system of {dest_dir}",
            field="staging_root",
        )


async def _materialize(
    source: Source,
    rootfs: Path,
    work: Path,
    dest_dir: Path,
    fetch: FetchOptions,
    options: ImportOptions,
    reporter: ProgressReporter,
) -> ImportResult:
    """Fill the new directory `rootfs` from `source`."""
    budget = Budget(options.max_bytes)
    text = source.text()
    if isinstance(source, ChrootSource):
        forbidden = [Path(path) for path in options.forbidden] + [work.parent, dest_dir]
        real = check_chroot(Path(source.path), forbidden=forbidden)
        await copy_chroot(real, rootfs, reporter)
        return ImportResult(source=text)
    await asyncio.to_thread(rootfs.mkdir, mode=0o755)
    if isinstance(source, TarballSource):
        tarball = _tarball(Path(source.path))
        layer = LayerBlob(path=tarball, label=source.path, size=tarball.stat().st_size)
        await reporter.run_in_thread(
            lambda: apply_layers(
                rootfs,
                [layer],
                whiteouts=False,  # a plain tarball: `.wh.*` files are just files
                allow_devices=options.allow_devices,
                budget=budget,
                reporter=reporter,
            )
        )
        return ImportResult(source=text)
    fetched = await fetch_layout(source, work, fetch, reporter)
    platform = parse_platform(fetch.platform)
    image = await reporter.run_in_thread(
        lambda: OciLayout(fetched.path).read_image(
            tag=fetched.tag, platform=platform, reporter=reporter
        )
    )
    await reporter.run_in_thread(
        lambda: apply_layers(
            rootfs,
            image.layers,
            whiteouts=True,
            allow_devices=options.allow_devices,
            budget=budget,
            reporter=reporter,
        )
    )
    return ImportResult(
        source=text,
        manifest_digest=fetched.digest or image.digest,
        image_manifest_digest=image.manifest_digest,
        config_digest=image.config_digest,
        platform=image.platform,
        config=image.config,
    )


def _tarball(path: Path) -> Path:
    if not path.exists():
        raise NotFound(f"{path}: no such file", field="source")
    if not path.is_file():
        raise Invalid(f"{path} is not a file", field="source")
    return path
