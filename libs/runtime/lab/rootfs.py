"""The lab's image: busybox-static, this machine's Debian cloud kernel with the modules its
virtual NIC needs, and an init that says on the console what the node sees.

Nothing else: no curl, so in secure mode the node agent has bootd push the runtime overlay to
a privileged port it listens on with busybox's nc (overlay wwclient).

The image's /sbin/init is busybox init (/etc/inittab): at start it prints a marker, the
hostname and the addresses; then it keeps printing the runtime overlay's lab file whenever
it changes, and offers a shell on the console.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from libs.runtime.lab.errors import Missing

BUSYBOX: Final = Path("/bin/busybox")
KERNEL_PACKAGE: Final = "linux-image-cloud-amd64"
# virtio_pci finds the device, virtio_net drives it; the rest of the tree is left out so the
# image stays small (under software emulation every megabyte costs boot time).
NIC_MODULES: Final = ("virtio_pci", "virtio_net")
# What the runtime overlay writes and the image's init prints (path inside the node).
LAB_FILE: Final = "etc/lab/message"
# Markers the image's init prints on the console.
INIT_MARKER: Final = "lab: the image's init is running"
HOSTNAME_MARKER: Final = "lab: hostname "
MESSAGE_MARKER: Final = "lab: message "

INITTAB: Final = """\
::sysinit:/etc/lab/hello
::respawn:/etc/lab/watch
::askfirst:-/bin/sh
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/umount -a -r
"""

HELLO: Final = f"""\
#!/bin/sh
# What a person checks first on a node that booted: the image's init, the name, the address.
echo "{INIT_MARKER} (pid 1 is $(cat /proc/1/comm))"
echo "{HOSTNAME_MARKER}$(hostname)"
ip -4 addr show | sed -n 's/^ *inet \\([^ ]*\\).* \\([^ ]*\\)$/lab: address \\1 on \\2/p'
"""

WATCH: Final = f"""\
#!/bin/sh
# Print /{LAB_FILE} (the runtime overlay puts it there) each time its content changes.
last=
while :; do
    now=$(cat /{LAB_FILE} 2>/dev/null)
    if [ -n "$now" ] && [ "$now" != "$last" ]; then
        echo "{MESSAGE_MARKER}$now"
        last=$now
    fi
    sleep 1
done
"""


@dataclass(frozen=True)
class Kernel:
    path: Path
    version: str


def installed_kernel() -> Kernel:
    """The kernel of the installed `linux-image-cloud-amd64` (its versioned dependency)."""
    depends = _dpkg("-W", "-f", "${Status} ${Depends}", KERNEL_PACKAGE)
    if depends is None or "install ok installed" not in depends:
        raise Missing(f"{KERNEL_PACKAGE} is not installed (apt-get install {KERNEL_PACKAGE})")
    package = depends.split("installed", 1)[1].split(",")[0].split()[0]
    files = _dpkg_files(package)
    kernels = [Path(f) for f in files if Path(f).name.startswith("vmlinuz-")]
    if not kernels or not kernels[0].is_file():
        raise Missing(f"{package} lists no kernel in /boot")
    version = kernels[0].name.removeprefix("vmlinuz-")
    if not (Path("/lib/modules") / version / "modules.dep").is_file():
        raise Missing(f"/lib/modules/{version}/modules.dep is missing")
    return Kernel(kernels[0], version)


def _dpkg(*args: str) -> str | None:
    if shutil.which("dpkg-query") is None:
        raise Missing("dpkg-query is not installed: the lab takes its kernel from a Debian package")
    done = subprocess.run(["dpkg-query", *args], capture_output=True, text=True, check=False)
    return done.stdout if done.returncode == 0 else None


def _dpkg_files(package: str) -> list[str]:
    listed = _dpkg("-L", package)
    if listed is None:
        raise Missing(f"{package} is not installed")
    return listed.splitlines()


def module_closure(modules_dir: Path, wanted: tuple[str, ...]) -> list[str]:
    """Paths (relative to `modules_dir`) of `wanted` and everything they depend on."""
    deps: dict[str, list[str]] = {}
    by_name: dict[str, str] = {}
    for line in (modules_dir / "modules.dep").read_text().splitlines():
        path, _, rest = line.partition(":")
        deps[path] = rest.split()
        by_name[Path(path).name.split(".ko")[0].replace("-", "_")] = path
    missing = [m for m in wanted if m not in by_name]
    if missing:
        raise Missing(f"{modules_dir} has no module {', '.join(missing)}")
    found: list[str] = []
    todo = [by_name[m] for m in wanted]
    while todo:
        path = todo.pop()
        if path not in found:
            found.append(path)
            todo += deps.get(path, [])
    return sorted(found)


def busybox_tree(root: Path) -> None:
    """/bin/busybox and a symlink per applet at the path busybox names."""
    if not BUSYBOX.is_file():
        raise Missing("busybox-static is not installed (/bin/busybox)")
    for folder in ("bin", "sbin", "usr/bin", "usr/sbin", "dev", "proc", "sys", "run", "tmp"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, root / "bin/busybox")
    applets = subprocess.run(
        [str(BUSYBOX), "--list-full"], capture_output=True, text=True, check=True
    ).stdout.split()
    for applet in applets:
        link = root / applet
        if not link.exists() and not link.is_symlink():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to("/bin/busybox")
    (root / "root").mkdir(mode=0o700, exist_ok=True)
    (root / "tmp").chmod(0o1777)


def add_kernel(root: Path, kernel: Kernel, modules: tuple[str, ...] | None) -> None:
    """The kernel into /boot; `modules` (None: all of them) and their dependencies into
    /lib/modules/VERSION, with modules.dep and modules.alias made for that set."""
    (root / "boot").mkdir(exist_ok=True)
    shutil.copy2(kernel.path, root / "boot" / kernel.path.name)
    source = Path("/lib/modules") / kernel.version
    target = root / "lib/modules" / kernel.version
    if modules is None:
        shutil.copytree(source, target, symlinks=True)
        return
    for relative in module_closure(source, modules):
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / relative, target / relative)
    for index in ("modules.builtin", "modules.builtin.modinfo", "modules.order"):
        if (source / index).is_file():
            shutil.copy2(source / index, target / index)
    # busybox's depmod: the same tool the node has, so its modprobe reads what it wrote.
    subprocess.run(
        [str(BUSYBOX), "depmod", "-b", str(root), kernel.version],
        check=True,
        capture_output=True,
    )


def add_lab_init(root: Path) -> None:
    etc = root / "etc"
    (etc / "lab").mkdir(parents=True, exist_ok=True)
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (etc / "group").write_text("root:x:0:\n")
    (etc / "hostname").write_text("lab-image\n")
    (etc / "inittab").write_text(INITTAB)
    for name, text in (("hello", HELLO), ("watch", WATCH)):
        script = etc / "lab" / name
        script.write_text(text)
        script.chmod(0o755)


def build_rootfs(root: Path, kernel: Kernel, modules: tuple[str, ...] | None = NIC_MODULES) -> Path:
    """The lab image's tree in `root` (which must not exist yet)."""
    root.mkdir(parents=True)
    busybox_tree(root)
    add_kernel(root, kernel, modules)
    add_lab_init(root)
    return root


def rootfs_tarball(tree: Path, dest: Path) -> Path:
    """An uncompressed tar of `tree`, owned by root, with /dev/console for the kernel."""

    def as_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as archive:
        for entry in sorted(os.listdir(tree)):
            archive.add(tree / entry, arcname=entry, filter=as_root)
        console = tarfile.TarInfo("dev/console")
        console.type = tarfile.CHRTYPE
        console.devmajor, console.devminor, console.mode = 5, 1, 0o600
        archive.addfile(console)
    return dest
