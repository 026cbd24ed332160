"""The `wolfpack` command: `up` (the whole stack), `run SERVICE` (one service), `dhcp` (dnsmasq
in a container of its own, libs/runtime/dhcp_keeper.py), the store's hygiene, `gc` and `fsck`
(libs/runtime/store_cmds.py), `token` (libs/runtime/token_cmds.py), `nats-auth`, and `demo`
(a virtual node boots).

Flags and environment variables map to libs.common.settings.Settings in
libs/runtime/settings_flags.py and nowhere else.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Coroutine
from typing import Any

import click

from libs.common.errors import Invalid
from libs.common.settings import Settings
from libs.runtime.demo import demo
from libs.runtime.dhcp_keeper import keep_dhcp
from libs.runtime.host import StartupFailed, serve
from libs.runtime.nats_auth_cmd import nats_auth
from libs.runtime.network import server_network
from libs.runtime.services import SERVICES, load
from libs.runtime.settings_flags import (
    cluster_options,
    network_options,
    settings_options,
    to_cluster,
    to_settings,
)
from libs.runtime.store_cmds import fsck, gc
from libs.runtime.token_cmds import token
from libs.runtime.up import up as run_stack


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """wolfpack: stateless provisioning for Linux clusters."""


@cli.command()
@settings_options
@network_options
@cluster_options
def up(
    nats: str | None,
    ip: str | None,
    dhcp: str | None,
    dhcp_range: str | None,
    nats_routes: tuple[str, ...],
    nats_name: str | None,
    nats_cluster_listen: str,
    **options: Any,
) -> None:
    """Start nats-server and every service (and dnsmasq with --dhcp); stop all on Ctrl+C or
    SIGTERM. With --nats-route, up's nats-server joins a NATS cluster."""
    try:
        network = server_network(ip, dhcp, dhcp_range)
    except Invalid as err:  # the message names the flag
        raise click.UsageError(err.message) from None
    cluster = to_cluster(nats_routes, nats_name, nats_cluster_listen)
    if cluster is not None and nats is not None:
        raise click.UsageError(
            "--nats-route joins up's own nats-server to a cluster: not with --nats"
        )
    _run("up", run_stack(to_settings(nats=nats, **options), nats, network, cluster))


@cli.command("dhcp")
@settings_options
@network_options
def dhcp_command(
    nats: str | None, ip: str | None, dhcp: str | None, dhcp_range: str | None, **options: Any
) -> None:
    """Run dnsmasq for the cluster network on its own (a host-networked container beside the
    services), with up's --ip/--dhcp/--dhcp-range; the leases follow the host files overlayd
    writes into DATA/host, without a signal from it."""
    if dhcp is None:
        raise click.UsageError("--dhcp IFACE is required: the interface dnsmasq answers on")
    try:
        network = server_network(ip, dhcp, dhcp_range)
    except Invalid as err:
        raise click.UsageError(err.message) from None
    assert network is not None
    _run("dhcp", keep_dhcp(to_settings(nats=nats, **options), network))


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
