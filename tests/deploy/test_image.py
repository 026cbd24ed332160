"""The wolfpack image, built from the working tree on a Debian base (deploy/Dockerfile with
`BASE` and `WOLFPACK_FROM=wheels`): small, and holding every tool the services call."""

from __future__ import annotations

import subprocess

from tests.deploy.images import Built

# The goal for the image.
MAX_SIZE = 400_000_000
# What the services run (tftpd/bootd's iPXE, DHCP, OCI imports, packing, host keys, image exec).
TOOLS = ("dnsmasq", "ip", "skopeo", "umoci", "cpio", "pigz", "ssh-keygen", "unshare", "chroot")


def test_the_image_is_small(wolfpack_image: Built) -> None:
    print(f"image {wolfpack_image.tag}: {wolfpack_image.size / 1e6:.0f} MB")
    assert wolfpack_image.size < MAX_SIZE


def test_the_image_has_the_tools_and_commands_services_call(
    docker: str, wolfpack_image: Built
) -> None:
    checks = [
        *(f"command -v {tool}" for tool in TOOLS),
        "ls /usr/lib/ipxe/undionly.kpxe",
        "wolfpack --help >/dev/null",
        "wolfctl --help >/dev/null",
        "nats-server --version",
    ]
    script = " && ".join(checks)
    done = subprocess.run(
        [docker, "run", "--rm", "--entrypoint", "sh", wolfpack_image.tag, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
