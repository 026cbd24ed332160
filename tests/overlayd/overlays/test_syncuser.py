"""Overlay syncuser: the image's accounts, then the host's the image lacks (read from this
machine's /etc/passwd and /etc/group through include_host)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from services.overlayd.engine.compiled_overlay import CompiledOverlay
from services.overlayd.engine.sources import ShippedOverlays
from tests.overlayd.overlays.helpers import Cluster, four_nic_node

IMAGE_PASSWD = "root:x:0:0:root:/root:/bin/bash\nslurm:x:450:450::/var/lib/slurm:/sbin/nologin\n"
IMAGE_GROUP = "root:x:0:\nwheel:x:10:\nslurm:x:450:\n"


def host_entries(path: str) -> list[str]:
    return [line for line in Path(path).read_text().splitlines() if line and line[0] != "#"]


def cluster(tmp_path: Path, *, with_group: bool = True, **fields: Any) -> Cluster:
    rootfs = tmp_path / "images/rocky9/rootfs/etc"
    rootfs.mkdir(parents=True)
    (rootfs / "passwd").write_text(IMAGE_PASSWD)
    if with_group:
        (rootfs / "group").write_text(IMAGE_GROUP)
    return Cluster(
        nodes=[four_nic_node(**fields)],
        images={"rocky9": {"name": "rocky9"}},
        images_dir=tmp_path / "images",
    )


def merged(first: list[str], *rest: list[str]) -> list[str]:
    names = {line.split(":")[0] for line in first}
    out = list(first)
    for lines in rest:
        for line in lines:
            if line.split(":")[0] not in names:
                names.add(line.split(":")[0])
                out.append(line)
    return out


def test_image_first_then_the_hosts_missing_entries(tmp_path: Path) -> None:
    files = cluster(tmp_path).render("syncuser", "n01")
    passwd = files["etc/passwd"].text.splitlines()
    assert passwd == merged(IMAGE_PASSWD.splitlines(), host_entries("/etc/passwd"))
    # The image's slurm (450) stays even if the host has another: files in the image own it.
    assert "slurm:x:450:450::/var/lib/slurm:/sbin/nologin" in passwd
    group = files["etc/group"].text.splitlines()
    assert group == merged(IMAGE_GROUP.splitlines(), host_entries("/etc/group"))
    assert files["etc/passwd"].mode == files["etc/group"].mode == 0o644


def test_one_render_per_image_not_per_node() -> None:
    tree = ShippedOverlays().get("syncuser")
    assert tree is not None
    assert "node" not in CompiledOverlay(tree).reads  # nodes of an image share the render


def test_an_image_without_the_file_or_without_metadata(tmp_path: Path) -> None:
    files = cluster(tmp_path, with_group=False).render("syncuser", "n01")
    assert files["etc/group"].text.splitlines() == host_entries("/etc/group")
    unbuilt = Cluster(nodes=[four_nic_node()])  # no image metadata yet: the host's accounts
    assert unbuilt.render("syncuser", "n01")["etc/passwd"].text.splitlines() == host_entries(
        "/etc/passwd"
    )
