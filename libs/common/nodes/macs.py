"""Hardware addresses, one rule everywhere: what the registry stores, what overlayd writes into
a boot manifest and what bootd looks nodes up by. EUI-48 (Ethernet), EUI-64 and the 20 octets
of an IP-over-InfiniBand address, written with colons or dashes in any case, become lowercase
colon form."""

from __future__ import annotations

import logging
import re
from typing import Final

from libs.common.errors import Invalid
from libs.common.models.node import Node

log = logging.getLogger("wolfpack.nodes")

OCTETS: Final = (6, 8, 20)  # EUI-48, EUI-64, IP over InfiniBand
_OCTET: Final = re.compile(r"[0-9a-f]{2}")
# A message quotes at most this much of what it was given (a hostile URL may be long).
_SHOWN: Final = 64


def normalize_mac(text: str, field: str = "hwaddr") -> str:
    """`AA-BB-CC-DD-EE-FF` or `aa:bb:...` (6, 8 or 20 octets) -> `aa:bb:cc:dd:ee:ff`;
    anything else is Invalid naming `field`."""
    octets = re.split(r"[:-]", text.strip().lower()) if isinstance(text, str) else []
    if len(octets) not in OCTETS or not all(_OCTET.fullmatch(o) for o in octets):
        shown = text[:_SHOWN] if isinstance(text, str) else text
        raise Invalid(f"{shown!r} is not a MAC address (like aa:bb:cc:dd:ee:ff)", field=field)
    return ":".join(octets)


def maybe_mac(text: str | None) -> str | None:
    """The normalized MAC, None for anything that is not one (stored data may hold junk)."""
    if not text:
        return None
    try:
        return normalize_mac(text)
    except Invalid:
        return None


def hwaddrs(node: Node) -> list[str]:
    """The MACs of every network device of the node, normalized, in device order."""
    found: list[str] = []
    for _, device in sorted(node.network_devices.items()):
        if not device.hwaddr:
            continue
        mac = maybe_mac(device.hwaddr)
        if mac is None:
            log.warning("node %s: ignoring hwaddr %r, not a MAC", node.name, device.hwaddr)
        elif mac not in found:
            found.append(mac)
    return found
