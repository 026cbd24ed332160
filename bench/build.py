"""Image build benchmark (not a test): wolfpack's VNFS builder against Warewulf's pipeline.

    python bench/build.py [--rootfs DIR] [--repeat 3] [--compression gzip|zstd] [--json]

On a real rootfs, a minimal Debian 12 (`debootstrap --variant=minbase bookworm`, made once and
cached in ~/.cache/wolfpack-bench/), measured in the same run and on the same copy:
(a) a full build by `build_image` into an empty store, against the pipeline Warewulf runs,
    `cd ROOT && find . | cpio -o -H newc | pigz > OUT` (no excludes for either: the same files
    go into both images), time and output size, and their ratios;
(b) a rebuild after one file changed, as a share of our full build.
Each figure is the median of --repeat runs, alternating ours and the reference, after one
warm-up of each (both read from a warm page cache). Ours writes every chunk and the image into
the store with fsync; the reference writes one file without. Goals: docs/benchmarks.md.
Needs wolfpack installed (`pip install -e .`, which scripts/test does), cpio, pigz, debootstrap.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec

from libs.common.store.cas import ContentStore
from services.builder.vnfs import BuildResult, build_image
from services.builder.vnfs.compress import Codec

CACHE = Path.home() / ".cache" / "wolfpack-bench"
SUITE = "bookworm"
CHANGED_FILE = "etc/motd"


class Figure(msgspec.Struct):
    measure: str
    value: float
    unit: str
    # The figure must stay at or below this (same unit); None: reported only.
    goal: float | None = None


class Report(msgspec.Struct, kw_only=True):
    rootfs: str
    rootfs_bytes: int
    files: int
    compression: str
    cpus: int
    python: str
    figures: list[Figure]


def mirror_url() -> str:
    """The Debian mirror apt uses here, from sources.list or deb822 .sources files."""
    texts = []
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        if path.is_file():
            texts.append(path.read_text(errors="replace"))
    for text in texts:
        for stanza in re.split(r"\n\s*\n", text):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.M)
            if uris and suites and SUITE in suites.group(1).split():
                return uris.group(1)
        for line in text.splitlines():
            match = re.match(r"deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line.strip())
            if match and match.group(2) == SUITE:
                return match.group(1)
    raise SystemExit(
        f"no apt source for {SUITE} in /etc/apt: pass --rootfs DIR with a rootfs to measure"
    )


def debian_rootfs() -> Path:
    """The cached minimal Debian, made on first use."""
    target = CACHE / f"{SUITE}-minbase"
    if target.is_dir():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{SUITE}-", dir=CACHE))
    mirror = mirror_url()
    print(f"making {target} with debootstrap from {mirror} (once)", file=sys.stderr)
    done = subprocess.run(
        ["debootstrap", "--variant=minbase", SUITE, str(staging), mirror],
        stdout=subprocess.DEVNULL,
        check=False,
    )
    if done.returncode != 0:
        # debootstrap could not reach the mirror (or is missing): unpack the host's own
        # required packages, downloaded by apt from wherever apt is configured to fetch.
        print("debootstrap failed; unpacking `apt-get download` packages instead", file=sys.stderr)
        shutil.rmtree(staging)
        staging.mkdir()
        unpack_required_debs(staging)
    staging.rename(target)
    return target


def unpack_required_debs(root: Path) -> None:
    listing = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package} ${Priority}\n"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    packages = [line.split()[0] for line in listing.splitlines() if line.endswith(" required")]
    debs = Path(tempfile.mkdtemp(prefix="debs-", dir=CACHE))
    try:
        subprocess.run(["apt-get", "download", *packages], cwd=debs, check=True)
        for deb in sorted(debs.glob("*.deb")):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    finally:
        shutil.rmtree(debs)


def copy_tree(source: Path, target: Path) -> None:
    """A copy, so changing a file never touches the cache (cp -a keeps hardlinks, owners)."""
    subprocess.run(["cp", "-a", str(source), str(target)], check=True)


def tree_size(root: Path) -> tuple[int, int]:
    total = files = 0
    for folder, _dirs, names in os.walk(root):
        for name in names:
            total += os.lstat(os.path.join(folder, name)).st_size
            files += 1
    return total, files


def reference_build(root: Path, out: Path) -> tuple[float, int]:
    """Warewulf's pipeline: `find . | cpio -o -H newc | pigz` (pigz's default level 6)."""
    started = time.perf_counter()
    subprocess.run(
        f"find . | cpio --quiet -o -H newc | pigz > {out}", shell=True, cwd=root, check=True
    )
    seconds = time.perf_counter() - started
    size = out.stat().st_size
    out.unlink()
    return seconds, size


async def our_build(root: Path, data: Path, compression: Codec) -> BuildResult:
    return await build_image(
        root,
        ContentStore(data / "cas"),
        index_path=data / "chunks.json",
        compression=compression,
        excludes=[],
    )


async def measure(args: argparse.Namespace) -> Report:
    source = Path(args.rootfs) if args.rootfs else debian_rootfs()
    work = Path(tempfile.mkdtemp(prefix="wolfpack-bench-"))
    try:
        root = work / "rootfs"
        copy_tree(source, root)
        rootfs_bytes, files = tree_size(root)
        ours_s: list[float] = []
        ref_s: list[float] = []
        ours_size = ref_size = 0
        for run in range(args.repeat + 1):  # run 0 warms the page cache for both
            data = work / f"data-{run}"
            result = await our_build(root, data, args.compression)
            seconds, ref_size = reference_build(root, work / "reference.cpio.gz")
            ours_size = result.size
            if run:
                ours_s.append(result.seconds)
                ref_s.append(seconds)
            if run < args.repeat:
                shutil.rmtree(data)
        # Rebuilds on the last store: one file changed each time.
        rebuild_s: list[float] = []
        rebuilt_chunks: list[int] = []
        for run in range(args.repeat):
            (root / CHANGED_FILE).write_text(f"changed for rebuild {run} at {time.time()}\n")
            result = await our_build(root, data, args.compression)
            rebuild_s.append(result.seconds)
            rebuilt_chunks.append(result.chunks_total - result.chunks_reused)
        ours = statistics.median(ours_s)
        ref = statistics.median(ref_s)
        rebuild = statistics.median(rebuild_s)
        figures = [
            Figure("full build, wolfpack", ours, "s"),
            Figure("full build, find | cpio | pigz", ref, "s"),
            Figure("time ratio wolfpack / reference", ours / ref, "x", 1.0),
            Figure("image size, wolfpack", ours_size / 1e6, "MB"),
            Figure("image size, find | cpio | pigz", ref_size / 1e6, "MB"),
            Figure("size ratio wolfpack / reference", ours_size / ref_size, "x", 1.05),
            Figure("chunks in the image", result.chunks_total, "chunks"),
            Figure("rebuild after one changed file", rebuild, "s"),
            Figure("chunks rebuilt", statistics.median(rebuilt_chunks), "chunks"),
            Figure("rebuild / full build", 100 * rebuild / ours, "%", 5.0),
        ]
        return Report(
            rootfs=str(source),
            rootfs_bytes=rootfs_bytes,
            files=files,
            compression=args.compression,
            cpus=len(os.sched_getaffinity(0)),
            python=platform.python_version(),
            figures=figures,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def show(report: Report) -> None:
    print(
        f"rootfs {report.rootfs}: {report.rootfs_bytes / 1e6:.0f} MB in {report.files} files; "
        f"{report.compression}; {report.cpus} CPUs; Python {report.python}"
    )
    for figure in report.figures:
        goal = ""
        if figure.goal is not None:
            verdict = "ok" if figure.value <= figure.goal else "MISSED"
            goal = f"  (goal <= {figure.goal:g}: {verdict})"
        print(f"  {figure.measure:<36} {figure.value:10.3f} {figure.unit}{goal}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rootfs", help="a rootfs to use instead of the cached minimal Debian")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--compression", choices=["gzip", "zstd"], default="gzip")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()
    report = asyncio.run(measure(args))
    if args.json:
        print(msgspec.json.encode(report).decode())
    else:
        show(report)


if __name__ == "__main__":
    main()
