"""Overlay issue: the console banner."""

from __future__ import annotations

from libs.common.models.node import Kernel
from tests.overlayd.overlays.helpers import Cluster, four_nic_node


def test_issue() -> None:
    node = four_nic_node(kernel=Kernel(version="6.1.0-56"))
    images = {"rocky9": {"name": "rocky9", "built_at": "2026-11-20T10:00:00Z"}}
    text = Cluster(nodes=[node], images=images).render("issue", "n01")["etc/issue"].text
    lines = text.splitlines()
    assert lines[:4] == [
        "wolfpack node:  n01 (cluster hpc)",
        "Image:          rocky9 (built 2026-11-20T10:00:00Z)",
        "Kernel:         6.1.0-56",
        "Kernel args:    quiet crashkernel=no net.ifnames=1",  # from the default profile
    ]
    assert "    default: eth0 aa:bb:cc:00:00:01" in lines
    assert "    default: \\4{eth0} (configured: 10.0.0.11)" in lines
    assert "    default: \\6{eth0} (configured: fd00::11)" in lines
    assert "    storage: \\4{bond0.42} (configured: 10.42.0.11)" in lines


def test_issue_without_image_metadata() -> None:
    text = Cluster(nodes=[four_nic_node()]).render("issue", "n01")["etc/issue"].text
    assert "Image:          rocky9\n" in text  # not built yet: no build time
    assert "Kernel:" not in text
