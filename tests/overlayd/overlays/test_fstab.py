"""Overlay fstab: Warewulf's defaults, the node's file systems, NFS exports, resources.fstab."""

from __future__ import annotations

import pytest

from libs.common.models.node import Filesystem
from services.overlayd.engine.errors import RenderError
from tests.overlayd.overlays.helpers import Cluster, four_nic_node, nfs, settings


def fields(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines() if line.strip() and line[0] != "#"]


def test_fstab() -> None:
    node = four_nic_node(
        filesystems={"/dev/sda1": Filesystem(format="ext4", path="/scratch")},
        resources={
            "fstab": [
                {"spec": "nas:/projects", "file": "/projects", "mntops": "rw,noatime"},
                {"spec": "tmpfs", "file": "/tmp", "vfstype": "tmpfs", "mntops": "size=2g",
                 "freq": 0, "passno": 0},
            ]
        },
    )  # fmt: skip
    exports = [nfs("/home", "defaults,nofail"), nfs("/opt", mount=False), nfs("/srv")]
    cluster = Cluster(nodes=[node], settings=settings(ip="10.0.0.1", nfs_exports=exports))
    assert fields(cluster.render("fstab", "n01")["etc/fstab"].text) == [
        ["rootfs", "/", "tmpfs", "defaults", "0", "0"],
        ["devpts", "/dev/pts", "devpts", "gid=5,mode=620", "0", "0"],
        ["tmpfs", "/run/shm", "tmpfs", "defaults", "0", "0"],
        ["sysfs", "/sys", "sysfs", "defaults", "0", "0"],
        ["proc", "/proc", "proc", "defaults", "0", "0"],
        ["/dev/sda1", "/scratch", "ext4", "noauto,defaults", "0", "0"],
        ["10.0.0.1:/home", "/home", "nfs", "defaults,nofail", "0", "0"],
        ["10.0.0.1:/srv", "/srv", "nfs", "defaults", "0", "0"],  # /opt is not mounted
        ["nas:/projects", "/projects", "nfs", "rw,noatime", "0", "0"],
        ["tmpfs", "/tmp", "tmpfs", "size=2g", "0", "0"],
    ]


def test_an_entry_without_a_mount_point_fails_with_a_message() -> None:
    node = four_nic_node(resources={"fstab": [{"spec": "nas:/x"}]})
    with pytest.raises(RenderError, match=r"resources\.fstab of node n01: every entry needs"):
        Cluster(nodes=[node]).render("fstab", "n01")
