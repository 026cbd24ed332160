"""What the lab can fail with before anything boots."""

from __future__ import annotations


class Missing(Exception):
    """Something the lab needs is not on this machine (root, /dev/net/tun, QEMU, OVMF, the
    kernel package): the message says what and how to get it."""
