"""`wolfpack demo`: watch a virtual machine network-boot from wolfpack, on this machine.

It builds a small image (busybox and this machine's Debian cloud kernel), makes a private
network (a network namespace with a tap device), starts `wolfpack up --dhcp` on it, imports
the image, adds a node, and boots a QEMU machine with that node's MAC with its console in this
terminal; Ctrl-A X ends it, and everything is taken down again. The same lab
(libs/runtime/lab) is what tests/e2e/test_boot_network.py boots in CI.
"""

from __future__ import annotations

import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Final, NoReturn

import click

from libs.runtime.lab import rootfs
from libs.runtime.lab.errors import Missing
from libs.runtime.lab.machine import LabNode, add_node
from libs.runtime.lab.qemu import FIRMWARES, Firmware, find_qemu, qemu_argv
from libs.runtime.lab.session import Lab, check_host, open_lab
from libs.runtime.lab.stack import boot_status

NODE: Final = "demo01"
MESSAGE: Final = "hello from wolfpack"


def say(text: str) -> None:
    click.secho(f"demo: {text}", fg="cyan", err=True)


def _stop_on_sigterm(signum: int, frame: object) -> NoReturn:
    raise SystemExit(128 + signum)  # unwinds through open_lab's clean-up


def instructions(lab: Lab, node: LabNode) -> str:
    inside = f"ip netns exec {lab.ns.name} env WOLFPACK_DATA={shlex.quote(str(lab.stack.data))}"
    message = lab.workdir / "message"
    return "\n".join(
        [
            f"node {node.name}: MAC {node.mac}, address {node.ip}, image {node.image}",
            f"wolfpack serves it from network namespace {lab.ns.name} ({lab.ns.tap}, "
            f"{lab.ns.ip}); its log: {lab.workdir / 'up.log'}",
            "While it boots, from another terminal (as root):",
            f"  {inside} wolfctl node status -w",
            "Change what the node prints (its runtime overlay; the agent applies it within "
            f"{node.interval} s):",
            f"  echo 'a new message' > {message}",
            f"  {inside} wolfctl overlay import {node.overlay} {message} {rootfs.LAB_FILE}",
            "Press Enter in the console for a shell on the node; Ctrl-A X ends the demo.",
        ]
    )


def show_timeline(lab: Lab, node: LabNode) -> None:
    status = lab.run(boot_status(lab.stack, node.name), 30)
    if status is None:
        say(f"bootd saw nothing from {node.name}")
        return
    say(f"what bootd saw of {node.name} (GET /api/v1/status):")
    for stage in status.timeline:
        when = time.strftime("%H:%M:%S", time.localtime(stage.at))
        outcome = "ok" if stage.ok else f"FAILED: {stage.error}"
        click.echo(f"  {when}  {stage.stage:<8} {stage.bytes:>10} bytes  {outcome}", err=True)


def run_demo(firmware: Firmware, workdir: Path, interval: int) -> None:
    qemu = find_qemu(firmware)
    with open_lab(workdir, say=say) as lab:
        node = lab.node(NODE, 10, interval=interval)
        say(f"adding node {node.name} with a runtime overlay saying {MESSAGE!r}")
        lab.run(add_node(lab.stack, lab.events, node, MESSAGE), 120)
        click.echo(instructions(lab, node), err=True)
        argv = qemu_argv(
            qemu, firmware, tap=lab.ns.tap, mac=node.mac, workdir=workdir, terminal=True
        )
        say(f"powering on ({firmware}); under software emulation it takes a minute or less")
        subprocess.run(lab.ns.exec_argv(argv), check=False)
        show_timeline(lab, node)
        say("stopping wolfpack and removing the network")


@click.command("demo")
@click.option(
    "--firmware",
    type=click.Choice(FIRMWARES),
    default="bios",
    show_default=True,
    help="bios: the iPXE ROM goes straight to HTTP; uefi: OVMF fetches iPXE over TFTP first.",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the image, DATA and logs go [default: a temporary folder, removed after].",
)
@click.option(
    "--interval",
    type=click.IntRange(1, 3600),
    default=10,
    show_default=True,
    help="Seconds between the node agent's runtime overlay fetches.",
)
def demo(firmware: Firmware, workdir: Path | None, interval: int) -> None:
    """Boot a virtual machine from wolfpack on a private network, its console here (root)."""
    try:
        check_host()
        find_qemu(firmware)
    except Missing as missing:
        raise click.ClickException(str(missing)) from None
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    folder = workdir or Path(tempfile.mkdtemp(prefix="wolfpack-demo-"))
    try:
        run_demo(firmware, folder.resolve(), interval)
    except Missing as missing:
        raise click.ClickException(str(missing)) from None
    finally:
        if workdir is None:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            say(f"kept {folder}")


if __name__ == "__main__":
    demo(sys.argv[1:])
