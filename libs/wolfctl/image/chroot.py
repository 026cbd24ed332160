"""Running a command inside an image's rootfs, as `wwctl image exec` does: /proc, /sys, /dev,
/dev/pts and the host's /etc/resolv.conf (read-only) bound into the tree, then chroot.

`run_in_image` starts `python -m libs.wolfctl.image.enter` (which calls `enter`) under
`unshare --mount --propagation private`: the mounts exist only in that new mount namespace,
so nothing else on the host (the builder least of all, which may walk or remove the tree)
ever sees them, and the kernel drops them when the namespace ends. The module still unmounts
each one itself, in reverse order, whatever the command did.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Final

from libs.common.errors import WolfpackError

# (host path, path in the image, read-only, needed) in mount order. Without a resolver
# file the command just has no DNS; without /proc or /dev most commands fail.
MOUNTS: Final = (
    ("/proc", "proc", False, True),
    ("/sys", "sys", False, True),
    ("/dev", "dev", False, True),
    ("/dev/pts", "dev/pts", False, True),
    ("/etc/resolv.conf", "etc/resolv.conf", True, False),
)
PATH: Final = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PACKAGE_ROOT: Final = Path(__file__).resolve().parents[3]


def run_in_image(name: str, rootfs: Path, argv: list[str]) -> int:
    """Run `argv` chrooted in `rootfs` (root only); returns its exit code."""
    if os.geteuid() != 0:
        raise WolfpackError(
            "image shell/exec needs root: it mounts /proc, /sys and /dev into the image "
            "and chroots (run it with sudo on the builder's machine)"
        )
    if not rootfs.is_dir():
        raise WolfpackError(
            f"the rootfs of image {name} ({rootfs}) is not on this machine: run this on the "
            "machine of the builder's data folder"
        )
    unshare = shutil.which("unshare")
    if unshare is None:
        raise WolfpackError("unshare (util-linux) is needed for image shell/exec")
    child = [unshare, "--mount", "--propagation", "private", "--"]
    child += [sys.executable, "-m", "libs.wolfctl.image.enter", str(rootfs), name, "--", *argv]
    process = subprocess.Popen(child, cwd=PACKAGE_ROOT)
    code = _wait(process)
    return 128 - code if code < 0 else code


def _wait(process: subprocess.Popen[bytes]) -> int:
    """Wait for `process`; Ctrl-C and Ctrl-\\ are the command's to handle, not ours."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGQUIT)}
    try:
        return process.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _inside(rootfs: Path, relative: str) -> Path:
    """`rootfs/relative` with no symlink on the way: a mount must never land outside."""
    path = rootfs
    for part in Path(relative).parts:
        path = path / part
        if path.is_symlink():
            raise WolfpackError(f"/{relative} in the image is a symlink; not mounting over it")
    return path


def _prepare(target: Path, is_dir: bool, created: list[Path]) -> None:
    """Make a missing mount point (removed again afterwards)."""
    if target.exists():
        kind = os.lstat(target).st_mode
        if is_dir != stat.S_ISDIR(kind):
            raise WolfpackError(f"{target} is not a {'directory' if is_dir else 'file'}")
        return
    if is_dir:
        target.mkdir()
    else:
        target.touch()
    created.append(target)


def _mount(source: str, target: Path, read_only: bool) -> None:
    subprocess.run(["mount", "--bind", source, str(target)], check=True)
    if read_only:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], check=True)


def _unmount(target: Path) -> None:
    if subprocess.run(["umount", str(target)], check=False).returncode != 0:
        subprocess.run(["umount", "--lazy", str(target)], check=False)


def _environment(name: str) -> dict[str, str]:
    """A clean environment: nothing of the caller's (tokens, paths) leaks into the image."""
    return {
        "PATH": PATH,
        "HOME": "/root",
        "TERM": os.environ.get("TERM", "dumb"),
        "PS1": f"[wolfpack:{name}] \\w\\$ ",
        "HISTFILE": "/dev/null",
        "WOLFPACK_IMAGE": name,
    }


def enter(rootfs: Path, name: str, argv: list[str]) -> int:
    """Inside the private mount namespace: mount, run the command chrooted, unmount."""
    mounted: list[Path] = []
    created: list[Path] = []
    try:
        for source, relative, read_only, needed in MOUNTS:
            if not os.path.exists(source):
                continue
            try:
                target = _inside(rootfs, relative)
                _prepare(target, os.path.isdir(source), created)
            except (WolfpackError, OSError) as err:
                if needed:
                    raise
                print(
                    f"wolfctl: note: /{relative} not bound into the image: {err}", file=sys.stderr
                )
                continue
            _mount(source, target, read_only)
            mounted.append(target)
        process = subprocess.Popen(["chroot", str(rootfs), *argv], env=_environment(name), cwd="/")
        code = _wait(process)
        return 128 - code if code < 0 else code  # killed by a signal: as a shell says it
    finally:
        for target in reversed(mounted):
            _unmount(target)
        for path in reversed(created):
            if path.is_dir():
                path.rmdir()
            else:
                path.unlink()
