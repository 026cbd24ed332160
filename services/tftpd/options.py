"""RRQ option negotiation (RFC 2347-2349), checked before tftpy sees the values.

tftpy's own negotiation calls int() on whatever arrives, accepts block sizes a UDP datagram
cannot carry and drops `timeout`; this decides instead, and the transfer uses the result.
"""

from __future__ import annotations

from typing import Final

from services.tftpd.root import Refused

FAILED_NEGOTIATION: Final = 8
# RFC 2348: 8..65464 octets (65464 + headers fits an IPv4 datagram).
MIN_BLKSIZE: Final = 8
MAX_BLKSIZE: Final = 65464
# RFC 2349: 1..255 seconds.
MIN_TIMEOUT: Final = 1
MAX_TIMEOUT: Final = 255
# No legitimate option value is longer; a longer one is not parsed at all.
MAX_VALUE_DIGITS: Final = 20


def _number(value: str) -> int | None:
    value = value.strip()
    if not value or len(value) > MAX_VALUE_DIGITS or not value.isascii() or not value.isdigit():
        return None
    return int(value)


def negotiate(requested: dict[str, str]) -> dict[str, int]:
    """The options to acknowledge (OACK); empty means a plain RFC 1350 transfer.

    `tsize` is acknowledged with 0 here; the transfer fills in the file's size. A block size
    too small or unreadable fails the request (error 8), as RFC 2348 allows; one too large is
    lowered to the largest allowed. Unknown options and bad `timeout`/`tsize` are ignored.
    """
    accepted: dict[str, int] = {}
    for raw_name, raw_value in requested.items():
        name = raw_name.lower()
        number = _number(raw_value)
        if name == "blksize":
            if number is None or number < MIN_BLKSIZE:
                raise Refused(FAILED_NEGOTIATION, f"blksize {raw_value[:32]!r} is not allowed")
            accepted["blksize"] = min(number, MAX_BLKSIZE)
        elif name == "tsize" and number is not None:
            accepted["tsize"] = 0
        elif name == "timeout" and number is not None and MIN_TIMEOUT <= number <= MAX_TIMEOUT:
            accepted["timeout"] = number
    return accepted
