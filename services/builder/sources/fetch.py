"""Fetching registry, archive and daemon sources into a local OCI layout with skopeo; a
local `oci:` layout is read where it is."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Final

import msgspec

from libs.common.errors import Invalid, NotFound
from services.builder.sources.daemon import save_image
from services.builder.sources.oci import OciLayout
from services.builder.sources.platform import parse_platform
from services.builder.sources.progress import ProgressReporter
from services.builder.sources.reference import (
    ChrootSource,
    DaemonSource,
    DockerArchiveSource,
    OciArchiveSource,
    OciLayoutSource,
    RegistrySource,
    Source,
    TarballSource,
    parse_source,
)
from services.builder.sources.skopeo import run_skopeo

FETCHED_TAG: Final = "latest"
SYSTEM_POLICY: Final = Path("/etc/containers/policy.json")
# Without a signature policy on the machine, skopeo refuses to copy: accept any image (the
# digests are still verified), as a machine without a policy would expect.
ACCEPT_ANYTHING: Final = b'{"default": [{"type": "insecureAcceptAnything"}]}'
POLL_INTERVAL: Final = 0.5

Fetchable = RegistrySource | OciArchiveSource | DockerArchiveSource | DaemonSource


class FetchOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How to reach a source: the platform to pick from an image index, plain HTTP or
    unverified TLS (`insecure`), credentials `user:password` or an auth file (skopeo's
    default places when none: $XDG_RUNTIME_DIR/containers/auth.json, ~/.docker/config.json)."""

    platform: str = "linux/amd64"
    insecure: bool = False
    creds: str | None = None
    authfile: str | None = None
    policy: str | None = None


class FetchedLayout(msgspec.Struct, frozen=True):
    """An OCI layout to read, the tag in it, and the digest the reference resolved to."""

    path: Path
    tag: str | None
    digest: str | None


def _auth_args(source: Source, options: FetchOptions, prefix: str) -> list[str]:
    if not isinstance(source, RegistrySource):
        return []
    args = []
    if options.insecure:
        args.append(f"--{prefix}tls-verify=false")
    if options.creds is not None:
        if ":" not in options.creds:
            raise Invalid("credentials must be user:password", field="creds")
        args += [f"--{prefix}creds", options.creds]
    if options.authfile is not None:
        args += [f"--{prefix}authfile", options.authfile]
    return args


async def inspect_digest(source: Source | str, options: FetchOptions | None = None) -> str | None:
    """The digest (`sha256:…`) of the manifest or image index `source` names now, the one an
    import of it would report; a push of the same digest means nothing changed. None for
    sources without one (chroot, tarball, docker-daemon)."""
    parsed = parse_source(source) if isinstance(source, str) else source
    if isinstance(parsed, OciLayoutSource):
        layout = OciLayout(Path(parsed.path))
        return await asyncio.to_thread(layout.digest, parsed.tag)
    if isinstance(parsed, ChrootSource | TarballSource | DaemonSource):
        return None
    if not isinstance(parsed, RegistrySource):
        _check_local_path(parsed)
    workdir = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="wolfpack-inspect-"))
    try:
        raw = await _inspect_raw(parsed, options or FetchOptions(), workdir=workdir)
    finally:
        await asyncio.to_thread(shutil.rmtree, workdir, ignore_errors=True)
    return f"sha256:{hashlib.sha256(raw).hexdigest()}"


async def _inspect_raw(
    source: Fetchable, options: FetchOptions, *, workdir: Path, label: str | None = None
) -> bytes:
    if isinstance(source, DaemonSource):
        raise Invalid("docker-daemon sources have no manifest digest", field="source")
    args = ["inspect", "--raw", *_auth_args(source, options, ""), _transport(source)]
    archive = not isinstance(source, RegistrySource)
    label = label or source.text()
    return await run_skopeo(args, source=label, tmpdir=workdir, archive=archive)


async def fetch_layout(
    source: Source, workdir: Path, options: FetchOptions, reporter: ProgressReporter
) -> FetchedLayout:
    """Bring `source` into an OCI layout under `workdir` (an `oci:` layout stays in place)."""
    if isinstance(source, OciLayoutSource):
        return FetchedLayout(path=Path(source.path), tag=source.tag, digest=None)
    if isinstance(source, ChrootSource | TarballSource):
        raise Invalid(f"{source.text()} is not an image reference or archive", field="source")
    label = source.text()  # errors name what the user asked for, not our pinned copy
    reporter.report("fetch", 0, None, force=True)
    if isinstance(source, DaemonSource):
        archive = workdir / "daemon.tar"
        name = source.name
        await reporter.run_in_thread(lambda: save_image(name, archive, reporter))
        source = DockerArchiveSource(path=str(archive))
    _check_local_path(source)
    raw = await _inspect_raw(source, options, workdir=workdir, label=label)
    digest = f"sha256:{hashlib.sha256(raw).hexdigest()}"
    if isinstance(source, RegistrySource):
        source = source.pinned(digest)  # copy exactly what was inspected
    layout = workdir / "layout"
    await _copy(source, label, layout, options, workdir, reporter, _total_size(raw))
    return FetchedLayout(path=layout, tag=FETCHED_TAG, digest=digest)


async def _copy(
    source: Fetchable,
    label: str,
    layout: Path,
    options: FetchOptions,
    workdir: Path,
    reporter: ProgressReporter,
    total: int | None,
) -> None:
    platform = parse_platform(options.platform)
    args = ["--policy", str(_policy(options, workdir))]
    args += ["--override-os", platform.os, "--override-arch", platform.architecture]
    if platform.variant:
        args += ["--override-variant", platform.variant]
    args += ["copy", *_auth_args(source, options, "src-"), "--dest-oci-accept-uncompressed-layers"]
    args += [_transport(source), f"oci:{layout}:{FETCHED_TAG}"]
    poller = asyncio.create_task(_poll_size(layout, reporter, total))
    try:
        archive = not isinstance(source, RegistrySource)
        await run_skopeo(args, source=label, tmpdir=workdir, archive=archive)
    finally:
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller
    reporter.report("fetch", _tree_size(layout), total, force=True)


def _transport(source: Fetchable) -> str:
    """The reference as skopeo spells it (paths made absolute: skopeo's cwd is ours)."""
    if isinstance(source, RegistrySource):
        return source.text()
    assert not isinstance(source, DaemonSource)
    path = os.path.abspath(source.path)
    if isinstance(source, OciArchiveSource):
        return f"oci-archive:{path}" + (f":{source.tag}" if source.tag else "")
    return f"docker-archive:{path}" + (f":{source.reference}" if source.reference else "")


def _check_local_path(source: Fetchable) -> None:
    if isinstance(source, OciArchiveSource | DockerArchiveSource):
        path = Path(source.path)
        if not path.is_file():
            if not path.exists():
                raise NotFound(f"{source.text()}: no such file", field="source")
            raise Invalid(f"{source.text()}: not a file", field="source")


def _policy(options: FetchOptions, workdir: Path) -> Path:
    if options.policy is not None:
        return Path(options.policy)
    if SYSTEM_POLICY.is_file():
        return SYSTEM_POLICY
    policy = workdir / "policy.json"
    policy.write_bytes(ACCEPT_ANYTHING)
    return policy


def _total_size(raw_manifest: bytes) -> int | None:
    """Bytes to fetch, if the reference names one manifest (an index's sizes are not known
    before the platform is picked)."""
    try:
        document = msgspec.json.decode(raw_manifest)
        blobs = [document["config"], *document["layers"]]
        return sum(int(blob["size"]) for blob in blobs)
    except (msgspec.DecodeError, KeyError, TypeError, ValueError):
        return None


async def _poll_size(layout: Path, reporter: ProgressReporter, total: int | None) -> None:
    """skopeo shows no progress without a terminal: watch its blobs grow instead."""
    while True:
        await asyncio.sleep(POLL_INTERVAL)
        reporter.report("fetch", await asyncio.to_thread(_tree_size, layout), total)


def _tree_size(path: Path) -> int:
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total
