"""What a fresh wolfpack starts with, as Warewulf 4.6 ships it: the `default` profile."""

from __future__ import annotations

from typing import Final

from libs.common.models.node import Kernel, Profile

DEFAULT_PROFILE_NAME: Final = "default"


def default_profile() -> Profile:
    """Warewulf's default profile: its overlays, kernel arguments, init and root."""
    return Profile(
        name=DEFAULT_PROFILE_NAME,
        comment="This profile is automatically included for each node",
        kernel=Kernel(args=["quiet", "crashkernel=no", "net.ifnames=1"]),
        init="/sbin/init",
        root="initramfs",
        ipxe_template="default",
        system_overlay=[
            "wwinit",
            "wwclient",
            "hosts",
            "fstab",
            "hostname",
            "ssh.host_keys",
            "issue",
            "resolv",
            "udev.netname",
            "systemd.netname",
            "ifcfg",
            "ifupdown",
            "NetworkManager",
        ],
        runtime_overlay=["hosts", "ssh.authorized_keys"],
    )
