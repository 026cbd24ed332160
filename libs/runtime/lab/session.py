"""The whole lab in one context: the image built and imported, the private network, the stack
serving it, and the node events, torn down in reverse order whatever happens."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

from libs.runtime.lab import netns, rootfs
from libs.runtime.lab.events import NodeEvents
from libs.runtime.lab.machine import LabNode
from libs.runtime.lab.netns import Namespace, NamespaceLoop
from libs.runtime.lab.stack import LabStack, import_image, start_stack

T = TypeVar("T")
NETWORK: Final = "10.99.0.1/24"
TAP: Final = "wolfpack0"
IMAGE: Final = "lab"
# Dynamic addresses for machines the registry does not know (host numbers of the network).
DHCP_RANGE: Final = (100, 149)
IMPORT_TIMEOUT: Final = 300.0


@dataclass
class Lab:
    workdir: Path
    ns: Namespace
    loop: NamespaceLoop
    stack: LabStack
    events: NodeEvents
    image: str

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coro` inside the lab's namespace (its sockets and processes are there)."""
        return self.loop.run(coro, timeout)

    def node(self, name: str, number: int, interval: int = 3) -> LabNode:
        """Node `name` at host number `number` of the lab network, MAC 52:54:00:99:00:NN."""
        return LabNode(
            name=name,
            mac=f"52:54:00:99:00:{number:02x}",
            ip=self.ns.host(number),
            netmask=self.ns.netmask,
            image=self.image,
            interval=interval,
        )


def check_host() -> None:
    """Missing (saying what) unless this machine can run the lab's network and image."""
    netns.check_network_host()
    rootfs.installed_kernel()


def build_image(workdir: Path) -> Path:
    """The lab image as a rootfs tarball in `workdir`."""
    shutil.rmtree(workdir / "rootfs", ignore_errors=True)  # a kept folder's last tree
    tree = rootfs.build_rootfs(workdir / "rootfs", rootfs.installed_kernel())
    tarball = rootfs.rootfs_tarball(tree, workdir / "lab-rootfs.tar")
    shutil.rmtree(tree)
    return tarball


@contextlib.contextmanager
def open_lab(
    workdir: Path,
    *,
    network: str = NETWORK,
    tap: str = TAP,
    image: str = IMAGE,
    say: Callable[[str], None] = lambda _: None,
) -> Iterator[Lab]:
    """Build and import the image, make the network, start the stack; yield the lab; then
    stop the stack and delete the namespace (with anything still running in it)."""
    ip = netns.check_network_host()
    workdir.mkdir(parents=True, exist_ok=True)
    say("building the image (busybox and this machine's Debian cloud kernel)")
    tarball = build_image(workdir)
    ns = Namespace.create(netns.unique_name(), tap, network, ip)
    say(f"network namespace {ns.name}: {tap} with {network}")
    loop: NamespaceLoop | None = None
    stack: LabStack | None = None
    events: NodeEvents | None = None
    try:
        loop = NamespaceLoop(ns.name).start()
        # A fresh DATA each time: a kept folder's last run would leave nodes and images.
        shutil.rmtree(workdir / "data", ignore_errors=True)
        (workdir / "data").mkdir()
        dhcp = (ns.host(DHCP_RANGE[0]), ns.host(DHCP_RANGE[1]))
        say(f"starting wolfpack up --ip {ns.ip} --dhcp {tap} --dhcp-range {','.join(dhcp)}")
        stack = loop.run(start_stack(ns, workdir / "data", dhcp, workdir / "up.log"))
        events = loop.run(NodeEvents.connect(stack.nats_url))
        say(f"importing {tarball.name} as image {image}")
        loop.run(import_image(stack, tarball, image), IMPORT_TIMEOUT)
        yield Lab(workdir, ns, loop, stack, events, image)
    finally:
        # Each step undone even if an earlier one fails; the namespace goes last, taking
        # whatever still runs in it (a machine, dnsmasq) with it.
        with contextlib.ExitStack() as undo:
            undo.callback(ns.delete)
            if loop is not None:
                running = loop
                undo.callback(running.stop)
                if stack is not None:
                    up = stack
                    undo.callback(lambda: running.run(up.stop(), 60))
                if events is not None:
                    watcher = events
                    undo.callback(lambda: running.run(watcher.close(), 30))
