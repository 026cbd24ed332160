"""Helpers for the overlay engine's tests: overlay trees on disk, a renderer on a real store,
and archives unpacked with GNU cpio, as the kernel would see them."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from libs.common.models.node import NetDev, Node
from libs.common.models.site import TemplateSettings
from libs.common.store.cas import ContentStore
from services.overlayd.engine import (
    NodeRender,
    OverlayRenderer,
    OverlaySources,
    RenderError,
    ShippedOverlays,
)
from services.overlayd.engine.keys import HostKey, HostKeys
from tests.needs import need_command

DATA = Path(__file__).parents[1] / "data"
KEYS = HostKeys(
    keys={
        t: HostKey(type=t, private=f"-----{t} private-----\n", public=f"ssh-{t} AAAA{t} host\n")
        for t in ("rsa", "ecdsa", "ed25519")
    }
)


class Link:
    """A symlink in an overlay tree written by `write_overlay`."""

    def __init__(self, target: str) -> None:
        self.target = target


def write_overlay(
    root: Path,
    name: str,
    files: Mapping[str, str | bytes | Link],
    meta: dict[str, Any] | None = None,
) -> Path:
    """An overlay folder `root/name` holding `files` (path → text, bytes or Link)."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    for path, content in files.items():
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Link):
            os.symlink(content.target, target)
        elif isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    if meta is not None:
        (folder / ".meta.json").write_text(json.dumps(meta))
    return folder


def make_renderer(
    data_dir: Path,
    overlays: Path,
    *,
    settings: TemplateSettings | None = None,
    host_roots: list[Path] | None = None,
    ssh_dir: Path | None = None,
    sources: OverlaySources | None = None,
) -> OverlayRenderer:
    store = ContentStore(data_dir / "cas")
    return OverlayRenderer(
        sources or OverlaySources(ShippedOverlays(overlays)),
        settings or TemplateSettings(ip="10.0.0.1", netmask="255.255.0.0"),
        KEYS,
        store,
        data_dir=data_dir,
        host_roots=host_roots if host_roots is not None else [data_dir],
        ssh_dir=ssh_dir,
    )


def node(name: str, *, system: list[str], runtime: list[str] | None = None, **fields: Any) -> Node:
    ip = fields.pop("ip", None)
    devices = fields.pop("network_devices", None)
    if devices is None and ip:
        devices = {"default": NetDev(device="eth0", ipaddr=ip, netmask="255.255.0.0")}
    return Node(
        name=name,
        system_overlay=system,
        runtime_overlay=runtime or [],
        network_devices=devices or {},
        **fields,
    )


def rendered(result: NodeRender | RenderError) -> NodeRender:
    assert isinstance(result, NodeRender), f"expected a render, got {result}"
    return result


def failed(result: NodeRender | RenderError) -> RenderError:
    assert isinstance(result, RenderError), f"expected a RenderError, got {result}"
    return result


def unpack(store: ContentStore, digest: str, dest: Path) -> Path:
    """The archive `digest`, gunzip'd and unpacked with GNU `cpio -idm` into `dest`."""
    need_command("cpio", "cpio")
    dest.mkdir(parents=True, exist_ok=True)
    raw = gzip.decompress(store.path(digest).read_bytes())
    subprocess.run(
        ["cpio", "-idmu", "--quiet", "--no-absolute-filenames"],
        input=raw,
        cwd=dest,
        check=True,
        capture_output=True,
    )
    return dest


def mode_of(path: Path) -> int:
    return os.lstat(path).st_mode & 0o7777
