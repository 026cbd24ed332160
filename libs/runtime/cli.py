"""The `wolfpack` command: `up` (the whole stack), `run SERVICE` (one service), and the store's
hygiene, `gc` and `fsck` (libs/runtime/store_cmds.py), `token` (libs/runtime/token_cmds.py),
and `demo` (a virtual node boots).

Flags and environment variables map to libs.common.settings.Settings here and nowhere else.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine
from typing import Any, Final, TypeVar

import click

from libs.common import names
from libs.common.errors import Invalid
from libs.common.logs import LEVELS
from libs.common.security.tls import check_name
from libs.common.settings import Settings
from libs.runtime.demo import demo
from libs.runtime.host import StartupFailed, serve
from libs.runtime.nats_auth_cmd import nats_auth
from libs.runtime.network import server_network
from libs.runtime.options import data_option
from libs.runtime.services import SERVICES, load
from libs.runtime.store_cmds import fsck, gc
from libs.runtime.token_cmds import token
from libs.runtime.up import up as run_stack

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
        default=Settings().bind,
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
        default=Settings().log_level,
        show_default=True,
    ),
    click.option(
        "--max-transfers",
        envvar="WOLFPACK_MAX_TRANSFERS",
        type=click.IntRange(min=0),
        default=Settings().max_transfers,
        show_default=True,
        help="bootd: kernels and images sent at once; more nodes are told to come back "
        "(503, Retry-After). 0: no limit.",
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
    max_transfers: int = Settings().max_transfers,
    tls: bool = False,
    tls_names: tuple[str, ...] = (),
) -> Settings:
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
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """wolfpack: stateless provisioning for Linux clusters."""


@cli.command()
@settings_options
@network_options
def up(
    nats: str | None, ip: str | None, dhcp: str | None, dhcp_range: str | None, **options: Any
) -> None:
    """Start nats-server and every service (and dnsmasq with --dhcp); stop all on Ctrl+C or
    SIGTERM."""
    try:
        network = server_network(ip, dhcp, dhcp_range)
    except Invalid as err:  # the message names the flag
        raise click.UsageError(err.message) from None
    _run("up", run_stack(to_settings(nats=nats, **options), nats, network))


@cli.command()
@click.argument("service", metavar="SERVICE", type=click.Choice(list(SERVICES)))
@settings_options
def run(service: str, **options: Any) -> None:
    """Run one SERVICE until SIGINT or SIGTERM (what each container runs)."""
    _run(service, _serve(service, to_settings(**options)))


async def _serve(name: str, settings: Settings) -> None:
    await serve(name, load(name), settings)


cli.add_command(gc)
cli.add_command(fsck)
cli.add_command(token)
cli.add_command(demo)
cli.add_command(nats_auth)


def _run(name: str, work: Coroutine[Any, Any, None]) -> None:
    """Run to the end; a start-up failure is one log line and exit status 1."""
    try:
        asyncio.run(work)
    except StartupFailed as exc:
        logging.getLogger(f"wolfpack.{name}").error("%s", exc)
        sys.exit(1)


def main() -> None:
    cli(prog_name="wolfpack")


if __name__ == "__main__":
    main()
