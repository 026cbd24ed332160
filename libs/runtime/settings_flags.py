"""The flags of `wolfpack up` and `wolfpack run`, each with its environment variable, and the
Settings they make: flags and environment map to libs.common.settings.Settings here and
nowhere else. A service reads only its Settings.
"""

from __future__ import annotations

import math
import socket
from collections.abc import Callable
from typing import Any, Final, TypeVar

import click

from libs.common import names
from libs.common.bus.cluster import ClusterMember
from libs.common.bus.retention import MIN_AGE, MIN_BYTES, Retention
from libs.common.errors import Invalid
from libs.common.logs import LEVELS
from libs.common.security.tls import check_name
from libs.common.settings import TFTP_TRANSFERS, Settings
from libs.common.units import parse_duration, parse_size, show_duration, show_size
from libs.runtime.options import data_option

F = TypeVar("F", bound=Callable[..., Any])

# Every shifted port must stay a valid port.
MAX_OFFSET: Final = 65535 - max(*names.PORTS.values(), names.BOOTD_TLS_PORT)


def _tls_names(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> tuple[str, ...]:
    try:
        return tuple(check_name(name) for name in value)
    except Invalid as err:
        raise click.BadParameter(err.message) from None


def _seconds(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if not 0 < value < math.inf:
        raise click.BadParameter(f"want seconds above 0, not {value}")
    return value


class Duration(click.ParamType):
    """Seconds, written `90`, `90s`, `10m`, `2h`, `7d`, `1h30m`; 0, or at least `least`."""

    name = "duration"

    def __init__(self, least: float) -> None:
        self.least = least

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, float | int):
            seconds = float(value)
        else:
            try:
                seconds = parse_duration(str(value))
            except Invalid as err:
                self.fail(err.message, param, ctx)
        if 0 < seconds < self.least:
            self.fail(f"want 0 (no limit) or at least {self.least:g}s, not {value}", param, ctx)
        return seconds


class Size(click.ParamType):
    """Bytes, written `4096`, `64KiB`, `1GiB`, `500MB`; 0, or at least `least`."""

    name = "size"

    def __init__(self, least: int) -> None:
        self.least = least

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int):
            size = value
        else:
            try:
                size = parse_size(str(value))
            except Invalid as err:
                self.fail(err.message, param, ctx)
        if 0 < size < self.least:
            least = show_size(self.least)
            self.fail(f"want 0 (no limit) or at least {least}, not {value}", param, ctx)
        return size


_DEFAULTS = Settings()

_OPTIONS = (
    data_option("Data directory (token, content store, NATS)."),
    click.option(
        "--nats",
        envvar="WOLFPACK_NATS",
        default=None,
        help=f"NATS server URL [default: nats://127.0.0.1:{names.NATS_PORT} + port offset].",
    ),
    click.option(
        "--bind",
        envvar="WOLFPACK_BIND",
        default=_DEFAULTS.bind,
        show_default=True,
        help="Address the HTTP and TFTP servers listen on.",
    ),
    click.option(
        "--port-offset",
        envvar="WOLFPACK_PORT_OFFSET",
        type=click.IntRange(0, MAX_OFFSET),
        default=0,
        show_default=True,
        help="Added to every default port.",
    ),
    click.option(
        "--public-read/--no-public-read",
        envvar="WOLFPACK_PUBLIC_READ",
        default=False,
        show_default=True,
        help="Allow API reads without the token.",
    ),
    click.option(
        "--tls/--no-tls",
        envvar="WOLFPACK_TLS",
        default=False,
        show_default=True,
        help="Serve the APIs over HTTPS with a private CA made in DATA/tls (bootd keeps plain "
        f"HTTP for booting nodes and adds HTTPS on {names.BOOTD_TLS_PORT}); docs/security.md.",
    ),
    click.option(
        "--tls-name",
        "tls_names",
        envvar="WOLFPACK_TLS_NAMES",
        multiple=True,
        metavar="NAME",
        callback=_tls_names,
        help="Another DNS name or address the server certificate covers (repeatable; "
        "localhost, this host's name, --bind and --ip are always in).",
    ),
    click.option(
        "--log-level",
        envvar="WOLFPACK_LOG_LEVEL",
        type=click.Choice(LEVELS, case_sensitive=False),
        default=_DEFAULTS.log_level,
        show_default=True,
    ),
    click.option(
        "--max-transfers",
        envvar="WOLFPACK_MAX_TRANSFERS",
        type=click.IntRange(min=0),
        default=_DEFAULTS.max_transfers,
        show_default=True,
        help="bootd: kernels and images sent at once; more nodes are told to come back "
        "(503, Retry-After). 0: no limit.",
    ),
    click.option(
        "--bootd-stall-seconds",
        envvar="WOLFPACK_BOOTD_STALL_SECONDS",
        type=float,
        default=_DEFAULTS.bootd_stall_seconds,
        show_default=True,
        callback=_seconds,
        help="bootd: a node that takes nothing of a blob for this long is cut off, freeing "
        "its transfer slot.",
    ),
    click.option(
        "--bootd-secure/--no-bootd-secure",
        envvar="WOLFPACK_BOOTD_SECURE",
        default=_DEFAULTS.bootd_secure,
        show_default=True,
        help="bootd: send a runtime overlay only to a privileged source port (docs/boot.md).",
    ),
    click.option(
        "--tftp-per-client",
        envvar="WOLFPACK_TFTP_PER_CLIENT",
        type=click.IntRange(1, TFTP_TRANSFERS),
        default=_DEFAULTS.tftp_per_client,
        show_default=True,
        help=f"tftpd: transfers one client address may hold at once ({TFTP_TRANSFERS} for "
        "the whole server).",
    ),
    click.option(
        "--events-max-age",
        envvar="WOLFPACK_EVENTS_MAX_AGE",
        type=Duration(MIN_AGE),
        default=_DEFAULTS.events_max_age,
        show_default=show_duration(_DEFAULTS.events_max_age),
        help="The WOLFPACK stream keeps events this long (s, m, h, d or w; 0: no age limit); "
        "the oldest go first. Each service sets it on the stream as it starts.",
    ),
    click.option(
        "--events-max-bytes",
        envvar="WOLFPACK_EVENTS_MAX_BYTES",
        type=Size(MIN_BYTES),
        default=_DEFAULTS.events_max_bytes,
        show_default=show_size(_DEFAULTS.events_max_bytes),
        help="The WOLFPACK stream keeps at most this much (K, M, G, T: powers of 1000; KiB, "
        "MiB, GiB, TiB: of 1024; 0: no size limit); the oldest events go first.",
    ),
    click.option(
        "--tftp-root",
        envvar="WOLFPACK_TFTP_ROOT",
        type=click.Path(file_okay=False),
        default=None,
        metavar="DIR",
        help="tftpd: serve DIR [default: DATA/tftp, filled from the ipxe package].",
    ),
)


# `up` only: the network nodes boot from, checked by libs.runtime.network.
_NETWORK_OPTIONS = (
    click.option(
        "--ip",
        envvar="WOLFPACK_IP",
        default=None,
        metavar="ADDR",
        help="Address nodes reach bootd and tftpd at [default: the --dhcp interface's address, "
        "else overlayd.yaml's ip, else this host's first non-loopback IPv4].",
    ),
    click.option(
        "--dhcp",
        envvar="WOLFPACK_DHCP",
        default=None,
        metavar="IFACE",
        help="Run dnsmasq (DHCP only) on IFACE with the configuration overlayd renders "
        "[default: no DHCP server; see docs/dhcp.md to use your own].",
    ),
    click.option(
        "--dhcp-range",
        envvar="WOLFPACK_DHCP_RANGE",
        default=None,
        metavar="FIRST,LAST",
        help="Dynamic addresses for unknown machines [default: registered nodes only].",
    ),
)


# `up` only: its nats-server as one member of a NATS cluster (docs/scale-out.md).
_CLUSTER_OPTIONS = (
    click.option(
        "--nats-route",
        "nats_routes",
        envvar="WOLFPACK_NATS_ROUTES",
        multiple=True,
        metavar="URL",
        help="Join a NATS cluster: the route URL (nats-route://HOST:PORT) of another member "
        "(repeat for each). Streams and buckets are kept three times once three servers are in.",
    ),
    click.option(
        "--nats-name",
        envvar="WOLFPACK_NATS_NAME",
        default=None,
        metavar="NAME",
        help="This member's server name, distinct in the cluster [default: this host's name].",
    ),
    click.option(
        "--nats-cluster-listen",
        envvar="WOLFPACK_NATS_CLUSTER_LISTEN",
        default="0.0.0.0:6222",
        show_default=True,
        metavar="HOST:PORT",
        help="Where this member takes routes from the others.",
    ),
)


def cluster_options(command: F) -> F:
    for option in reversed(_CLUSTER_OPTIONS):
        command = option(command)
    return command


def to_cluster(
    nats_routes: tuple[str, ...], nats_name: str | None, nats_cluster_listen: str
) -> ClusterMember | None:
    """The cluster member up's nats-server is, or None (a server of its own)."""
    if not nats_routes:
        return None
    for route in nats_routes:
        if not route.startswith("nats-route://") or ":" not in route.removeprefix("nats-route://"):
            raise click.BadParameter(
                f"want nats-route://HOST:PORT, not {route!r}", param_hint="--nats-route"
            )
    return ClusterMember(
        server_name=nats_name or socket.gethostname(),
        listen=nats_cluster_listen,
        routes=nats_routes,
    )


def settings_options(command: F) -> F:
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


def network_options(command: F) -> F:
    for option in reversed(_NETWORK_OPTIONS):
        command = option(command)
    return command


def to_settings(
    data: str,
    nats: str | None,
    bind: str,
    port_offset: int,
    public_read: bool,
    log_level: str,
    max_transfers: int = _DEFAULTS.max_transfers,
    tls: bool = False,
    tls_names: tuple[str, ...] = (),
    bootd_stall_seconds: float = _DEFAULTS.bootd_stall_seconds,
    bootd_secure: bool = _DEFAULTS.bootd_secure,
    tftp_per_client: int = _DEFAULTS.tftp_per_client,
    tftp_root: str | None = None,
    events_max_age: float = _DEFAULTS.events_max_age,
    events_max_bytes: int = _DEFAULTS.events_max_bytes,
) -> Settings:
    try:
        Retention(max_age=events_max_age, max_bytes=events_max_bytes)
    except Invalid as err:
        raise click.BadParameter(
            err.message, param_hint="--events-max-age/--events-max-bytes"
        ) from None
    return Settings(
        data=data,
        nats_url=nats or f"nats://127.0.0.1:{names.NATS_PORT + port_offset}",
        bind=bind,
        port_offset=port_offset,
        public_read=public_read,
        log_level=log_level.lower(),
        max_transfers=max_transfers,
        tls=tls,
        tls_names=tls_names,
        bootd_stall_seconds=bootd_stall_seconds,
        bootd_secure=bootd_secure,
        tftp_per_client=tftp_per_client,
        tftp_root=tftp_root,
        events_max_age=events_max_age,
        events_max_bytes=events_max_bytes,
    )
