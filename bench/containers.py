"""Containers benchmark (not a test): the image, the compose stack, and a VM's boot against the
containers side by side with the same boot against `wolfpack up`.

    sudo python -m bench.containers [--boots 2] [--json]     (from the repository root)

Figures, in one run on this machine:
(a) deploy/Dockerfile built on the tests' Debian base (debootstrap, cached) from wheels: cold
    (no layer reused; the base is there), warm (the same context again), and after a code
    change (wolfpack's wheel built again, the apt layer reused); the image's size;
(b) `docker-compose up -d` (bridged, docker-compose.override.yml) until every container is
    healthy, the image built;
(c) the same BIOS machine (QEMU, software emulation) booted --boots times against `wolfpack up`
    in the lab's network namespace, then against the containers through
    docker-compose.host.yml, power-on to the agent's first report (the check of
    tests/e2e/bootlab.py, every step); the ratio of the medians.
Goals (docs/benchmarks.md): size < 400 MB, up -d to healthy < 30 s, boot ratio <= 1.1.
Needs root, docker.io and docker-compose (a dockerd is started if none answers), debootstrap,
qemu-system-x86 and ipxe-qemu, and wolfpack installed (`bash scripts/test` does all of it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec

from libs.runtime.lab.events import NodeEvents
from libs.runtime.lab.session import IMAGE, build_image, open_lab
from libs.runtime.lab.stack import import_image
from tests.deploy.bootstack import containers, host_project, lab_node, wire
from tests.deploy.compose import Project
from tests.deploy.engine import engine
from tests.deploy.images import base_image, build_context, build_from
from tests.e2e.bootlab import Timings, boot_and_check

TAG = "wolfpack-bench/wolfpack:bench"
BOOT_TIMEOUT = 300.0


class Figure(msgspec.Struct):
    measure: str
    value: float
    unit: str
    # The figure must stay at or below this (same unit); None: reported only.
    goal: float | None = None


class Report(msgspec.Struct, kw_only=True):
    cpus: int
    python: str
    figures: list[Figure]


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def image_figures(docker: str, base: str, folder: Path) -> list[Figure]:
    context = build_context(folder / "context")
    cold = build_from(docker, TAG, base, context, cache=False, keep=True)
    say(f"cold build: {cold.seconds:.1f} s")
    warm = build_from(docker, TAG, base, context)
    say(f"warm build: {warm.seconds:.1f} s")
    shutil.rmtree(context)
    started = time.monotonic()
    changed = build_from(docker, TAG, base, build_context(folder / "context"))
    code = time.monotonic() - started
    say(f"after a code change: {code:.1f} s (wheels included)")
    return [
        Figure("image build, cold (base present)", round(cold.seconds, 1), "s"),
        Figure("image build, warm cache", round(warm.seconds, 1), "s"),
        Figure("image build after a code change (wheels made again)", round(code, 1), "s"),
        Figure("image size", round(changed.size / 1e6), "MB", goal=400),
    ]


def up_figure(docker: str, folder: Path) -> Figure:
    project = Project(
        name=f"wpbench{os.getpid()}",
        docker=docker,
        image=TAG,
        import_dir=folder,
        variables={"NATS_IMAGE": TAG},
    )
    try:
        started = time.monotonic()
        project.compose("up", "-d", within=600)
        project.wait_healthy()
        took = time.monotonic() - started
    finally:
        project.down("-v")
    say(f"up -d to every container healthy: {took:.1f} s")
    return Figure("compose up -d to every container healthy", round(took, 1), "s", goal=30)


def boots_on_up(workdir: Path, boots: int) -> list[Timings]:
    found = []
    with open_lab(workdir, say=say) as lab:
        for number in range(boots):
            node = lab.node(f"ubench{number}", 20 + number)
            coro = boot_and_check(lab.stack, lab.events, lab.workdir, node, "bios")
            found.append(lab.run(coro, timeout=BOOT_TIMEOUT))
            say(f"wolfpack up: {found[-1].summary()}")
    return found


async def boots_on_containers(docker: str, workdir: Path, boots: int) -> list[Timings]:
    tarball = await asyncio.to_thread(build_image, workdir)
    tap = wire()
    found = []
    try:
        async with containers(host_project(docker, TAG, tap, workdir), tap, workdir) as stack:
            events = await NodeEvents.connect(stack.nats_url)
            try:
                await import_image(stack, tarball, IMAGE)
                for number in range(boots):
                    node = lab_node(tap, f"cbench{number}", 20 + number)
                    async with asyncio.timeout(BOOT_TIMEOUT):
                        found.append(await boot_and_check(stack, events, workdir, node, "bios"))
                    say(f"containers: {found[-1].summary()}")
            finally:
                await events.close()
    finally:
        tap.delete()
    return found


def boot_figures(docker: str, folder: Path, boots: int) -> list[Figure]:
    on_up = boots_on_up(folder / "up", boots)
    on_containers = asyncio.run(boots_on_containers(docker, folder / "containers", boots))
    up_s = statistics.median(t.agent_report for t in on_up)
    containers_s = statistics.median(t.agent_report for t in on_containers)
    return [
        Figure("VM boot to agent report, wolfpack up (median)", up_s, "s"),
        Figure("VM boot to agent report, containers (median)", containers_s, "s"),
        Figure("boot ratio containers / wolfpack up", round(containers_s / up_s, 2), "x", 1.1),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--boots", type=int, default=2, help="boots per stack (median)")
    parser.add_argument("--json", action="store_true", help="the report as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wolfpack-bench-containers-") as tmp:
        folder = Path(tmp)
        with engine(folder / "dockerd.log") as docker:
            base = base_image(docker)
            figures = image_figures(docker, base, folder)
            figures.append(up_figure(docker, folder))
            figures += boot_figures(docker, folder, args.boots)
            subprocess.run([docker, "rmi", TAG], capture_output=True, check=False)
    report = Report(cpus=os.cpu_count() or 0, python=platform.python_version(), figures=figures)
    if args.json:
        print(msgspec.json.format(msgspec.json.encode(report)).decode())
        return
    for figure in figures:
        goal = "" if figure.goal is None else f"  (goal <= {figure.goal:g} {figure.unit})"
        print(f"{figure.measure:<55} {figure.value:>8g} {figure.unit}{goal}")


if __name__ == "__main__":
    main()
