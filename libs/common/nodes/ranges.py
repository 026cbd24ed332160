"""Node name ranges (`n[001-100]`, via python-hostlist) and addresses counted up per node."""

from __future__ import annotations

import ipaddress

import hostlist

from libs.common.errors import Invalid
from libs.common.nodes.validate import validate_name

MAX_NAMES = 100_000


def expand_names(expr: str, field: str = "names") -> list[str]:
    """`n[1-3],m5` -> [n1, n2, n3, m5], each a valid node name, duplicates dropped."""
    if not expr.strip():
        raise Invalid("empty node range", field=field)
    try:
        names: list[str] = hostlist.expand_hostlist(expr.strip())
    except hostlist.BadHostlist as exc:
        if "too large" in str(exc):
            raise Invalid(f"{expr!r} gives more than {MAX_NAMES} names", field=field) from None
        raise Invalid(f"{expr!r} is not a node range: {exc}", field=field) from None
    if len(names) > MAX_NAMES:
        raise Invalid(f"{expr!r} gives {len(names)} names, more than {MAX_NAMES}", field=field)
    for name in names:
        validate_name(name, field=field)
    return names


def count_up(first: str, n: int, field: str = "ipaddr") -> list[str]:
    """`n` consecutive IPv4 or IPv6 addresses starting at `first`."""
    try:
        start = ipaddress.ip_address(first.strip())
    except ValueError:
        raise Invalid(f"{first!r} is not an IP address", field=field) from None
    if n < 0:
        raise Invalid(f"cannot count {n} addresses", field=field)
    last = int(start) + n - 1
    if n and last > 2**start.max_prefixlen - 1:
        raise Invalid(
            f"{n} addresses from {start} run past the end of the IPv{start.version} space",
            field=field,
        )
    return [str(start + i) for i in range(n)]
