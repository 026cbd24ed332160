"""iPXE scripts: a node's boot script rendered from its manifest with its `ipxe_template`
(sandboxed Jinja2), and the scripts for a node that is being discovered or is unknown."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import jinja2
import msgspec
from jinja2.sandbox import SandboxedEnvironment

from libs.common.errors import Invalid, NotFound
from libs.common.models.overlay import BootManifest

TEMPLATES: Final = Path(__file__).parent / "templates"
DEFAULT_TEMPLATE: Final = "default"
# Above this, an EFI iPXE extracts the image itself (imgextract) rather than handing the
# firmware one huge initrd; Debian's iPXE lacks imgextract, so the script falls back.
EXTRACT_ABOVE: Final = 2 * 1024**3
RETRY_SECONDS: Final = 10
UNCONFIGURED_SECONDS: Final = 30
DISCOVERED_SECONDS: Final = 3


class Fetch(msgspec.Struct, frozen=True):
    """One file the script fetches: its initrd name and URL."""

    name: str
    url: str
    extract: bool = False


class ScriptContext(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a template sees (one explicit object, like Warewulf's template data)."""

    node: str
    mac: str
    base: str
    revision: int
    kernel: Fetch
    initrds: list[Fetch]
    runtime: Fetch
    kernel_args: list[str]
    script_url: str
    retry_seconds: int = RETRY_SECONDS
    # Secure mode: the runtime overlay goes only to a privileged source port, which iPXE
    # never uses, so the script does not ask for it (the node agent fetches it).
    secure: bool = False


class ScriptRenderer:
    """Loads templates from `folder` (NAME.ipxe.j2) once each; renders in a sandbox."""

    def __init__(self, folder: Path = TEMPLATES) -> None:
        self._env = SandboxedEnvironment(
            loader=jinja2.FileSystemLoader(folder),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            autoescape=False,
        )

    def render(self, context: ScriptContext, template: str | None) -> str:
        name = template or DEFAULT_TEMPLATE
        if not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise Invalid(f"bad iPXE template name {name!r}", field="ipxe_template")
        try:
            loaded = self._env.get_template(f"{name}.ipxe.j2")
        except jinja2.TemplateNotFound:
            raise NotFound(f"no iPXE template {name!r}", field="ipxe_template") from None
        values = {f: getattr(context, f) for f in context.__struct_fields__}
        return loaded.render(values)


def boot_context(
    manifest: BootManifest, mac: str, base: str, image_size: int | None, secure: bool = False
) -> ScriptContext:
    """The template's context: blob URLs on `base` (the address the node reached us at)."""
    if manifest.kernel_digest is None or manifest.image_digest is None:
        raise NotFound(f"node {manifest.node} has no kernel or image yet", field="image")
    wwid = mac  # validated: hex pairs and colons only
    # The node sends its asset tag itself (iPXE's ${asset}); the script never holds the key.
    # Blobs too: a system overlay archive goes only to its node (services/bootd/access.py).
    key = "?assetkey=${asset}" if manifest.asset_key else ""
    blob_key = "&assetkey=${asset}" if manifest.asset_key else ""

    def blob(digest: str) -> str:
        return f"{base}/blobs/sha256/{digest}?wwid={wwid}{blob_key}"

    extract = image_size is not None and image_size > EXTRACT_ABOVE
    initrds = [Fetch("image", blob(manifest.image_digest), extract)]
    initrds += [Fetch(f"system{i}", blob(d)) for i, d in enumerate(manifest.system_digests)]
    return ScriptContext(
        node=manifest.node,
        mac=mac,
        base=base,
        revision=manifest.revision,
        kernel=Fetch("kernel", blob(manifest.kernel_digest)),
        initrds=initrds,
        runtime=Fetch("runtime", f"{base}/runtime/{wwid}{key}"),
        kernel_args=list(manifest.kernel_args),
        script_url=f"{base}/ipxe/{wwid}{key}",
        secure=secure,
    )


def waiting_script(mac: str, base: str, why: str, seconds: int) -> str:
    """A script that says why it waits, then asks again for the node's script."""
    return f"#!ipxe\necho wolfpack: {why}\nsleep {seconds}\nchain {base}/ipxe/{mac}\n"


def unconfigured_script(mac: str, base: str) -> str:
    why = f"no node has MAC {mac} (unconfigured) - mark a node discoverable or set its hwaddr"
    return waiting_script(mac, base, why, UNCONFIGURED_SECONDS)


def discovered_script(node: str, mac: str, base: str) -> str:
    why = f"MAC {mac} was given to node {node}, waiting for its boot files"
    return waiting_script(mac, base, why, DISCOVERED_SECONDS)
