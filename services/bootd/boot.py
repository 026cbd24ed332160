"""What a booting node asks for, answered from the in-memory index: its script (discovering it
if needed), the blobs of each stage, its runtime overlay; every answer is a boot stage."""

from __future__ import annotations

import logging
import time

from libs.common.errors import Invalid, NotFound
from libs.common.models.boot_stage import UNKNOWN_NODE, BootStage, Stage
from libs.common.models.overlay import BootManifest
from libs.common.nodes.macs import normalize_mac
from libs.common.store.cas import ContentStore, parse_digest
from services.bootd import script
from services.bootd.access import check_asset_key, check_own_archive, check_runtime
from services.bootd.discovery import Discovery
from services.bootd.index import ManifestIndex, bare
from services.bootd.status import StagePublisher

log = logging.getLogger("wolfpack.bootd")

FILE_STAGES: tuple[Stage, ...] = ("kernel", "image", "system", "runtime")


class BootServer:
    def __init__(
        self,
        index: ManifestIndex,
        store: ContentStore,
        renderer: script.ScriptRenderer,
        discovery: Discovery,
        publisher: StagePublisher,
        *,
        secure: bool = True,
    ) -> None:
        self.index = index
        self.store = store
        self.renderer = renderer
        self.discovery = discovery
        self.publisher = publisher
        self.secure = secure

    def manifest(self, mac: str, assetkey: str | None) -> BootManifest:
        """The manifest of the node owning `mac`, its asset key checked."""
        manifest = self.index.manifest_for_mac(mac)
        if manifest is None:
            raise NotFound(f"no node has MAC {mac}", field="mac")
        check_asset_key(manifest, assetkey, self.index.known_key)
        return manifest

    def owner(self, mac: str) -> str:
        """The node that owns `mac`, else UNKNOWN_NODE: whose stage a refusal is."""
        manifest = self.index.manifest_for_mac(mac)
        return manifest.node if manifest is not None else UNKNOWN_NODE

    def runtime_manifest(self, mac: str, assetkey: str | None, port: int | None) -> BootManifest:
        """The manifest whose runtime overlay `mac` may fetch, asking from (or listening on)
        `port`, or the refusal (services.bootd.access.check_runtime)."""
        manifest = self.index.manifest_for_mac(mac)
        return check_runtime(manifest, mac, assetkey, port, self.secure, self.index.known_key)

    async def script(self, mac: str, base: str, assetkey: str | None) -> tuple[str, str]:
        """(iPXE script, node name) for `mac`; an unknown MAC is discovered or told to wait."""
        manifest = self.index.manifest_for_mac(mac)
        if manifest is not None:
            check_asset_key(manifest, assetkey, self.index.known_key)
            size = self._size(manifest.image_digest)
            try:
                context = script.boot_context(manifest, mac, base, size, self.secure)
            except NotFound as err:
                return script.waiting_script(mac, base, err.message, script.RETRY_SECONDS), (
                    manifest.node
                )
            return self.renderer.render(context, manifest.ipxe_template), manifest.node
        node = await self.discovery.discover(mac)
        if node is not None:
            return script.discovered_script(node, mac, base), node
        return script.unconfigured_script(mac, base), UNKNOWN_NODE

    def stage_digests(self, manifest: BootManifest, stage: str) -> list[str]:
        """The blobs a Warewulf stage route serves for the node."""
        digests: dict[str, list[str | None]] = {
            "kernel": [manifest.kernel_digest],
            "image": [manifest.image_digest],
            "system": list(manifest.system_digests),
            "runtime": [manifest.runtime_digest],
        }
        if stage not in digests:
            raise Invalid(f"unknown stage {stage!r} (want one of ipxe, {', '.join(digests)})")
        found = [d for d in digests[stage] if d is not None]
        if not found:
            raise NotFound(f"node {manifest.node} has no {stage} yet", field="stage")
        return found

    def blob_owner(
        self, wwid: str | None, digest: str, assetkey: str | None = None
    ) -> tuple[str, Stage] | None:
        """Whether `/blobs/sha256/<digest>` may be sent, and to which node's boot (by the
        `?wwid=` its script put on the URL) it belongs, as what. An allow-list: a kernel or
        image that a current manifest or image names, to anyone; an overlay archive that the
        current manifest of the node asked as lists, to that node (its asset key decides:
        Unauthorized, Forbidden). Anything else is NotFound, as a blob never stored, so that
        knowing a digest (events, status, manifests) opens nothing; Invalid if malformed."""
        digest = parse_digest(digest)
        manifest = None
        if wwid is not None:
            try:
                manifest = self.index.manifest_for_mac(normalize_mac(wwid))
            except Invalid:
                manifest = None
        if self.index.public(digest):
            if manifest is None:
                return None
            if digest == bare(manifest.kernel_digest or ""):
                return manifest.node, "kernel"
            if digest == bare(manifest.image_digest or ""):
                return manifest.node, "image"
            return None
        own = [*manifest.system_digests, manifest.runtime_digest] if manifest else []
        if manifest is None or digest not in {bare(d) for d in own if d}:
            raise NotFound(
                f"blob {digest} is not served here: /blobs sends the kernels and images nodes "
                "boot, and a node's system overlay archives to that node only (?wwid=<its "
                "MAC>&assetkey=<its key>); a runtime overlay goes out at /runtime/<mac>",
                field="digest",
            )
        check_own_archive(manifest, digest, assetkey, self.index.known_key)
        return manifest.node, "system"

    async def record(
        self,
        node: str,
        stage: Stage,
        file: str,
        *,
        remote: str,
        hwaddr: str = "",
        sent: int = 0,
        started: float | None = None,
        error: str = "",
    ) -> None:
        duration = time.monotonic() - started if started is not None else 0.0
        await self.publisher.publish(
            BootStage(
                node=node,
                stage=stage,
                file=file,
                bytes=sent,
                remote=remote,
                hwaddr=hwaddr,
                duration=duration,
                ok=not error,
                error=error,
            )
        )

    def _size(self, digest: str | None) -> int | None:
        if digest is None:
            return None
        try:
            return self.store.size(digest)
        except (NotFound, Invalid):
            return None
