"""`wolfpack up`: nats-server (unless one is given), then every service as its own process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Final

import msgspec

import libs
from libs.common import names
from libs.common.bus.auth import ensure_nats_auth
from libs.common.bus.cluster import CLUSTER_CONFIG, ClusterMember, write_config
from libs.common.bus.server import NatsServer
from libs.common.endpoints import Endpoints, write_endpoints
from libs.common.errors import Invalid
from libs.common.http.listeners import api_url
from libs.common.logs import setup_logging
from libs.common.security.api_token import ensure_token
from libs.common.security.tls import TlsState, ensure_tls, wanted_names
from libs.common.settings import Settings
from libs.common.site.config import load_config, template_settings
from libs.runtime import dhcp
from libs.runtime.host import StartupFailed, listen, stopped_by_signals
from libs.runtime.natskeeper import keep_running
from libs.runtime.network import ServerNetwork
from libs.runtime.services import SERVICES
from libs.runtime.supervisor import Child, Supervisor
from libs.runtime.uplock import LEFTOVERS_WITHIN, only_up, stop_leftovers

READY_TIMEOUT: Final = 60.0
WILDCARDS: Final = {"", "0.0.0.0", "::"}


def local_host(bind: str) -> str:
    """Where a local client reaches a server bound to `bind`."""
    if bind in WILDCARDS:
        return "::1" if bind == "::" else "127.0.0.1"
    return bind


def base_url(settings: Settings, service: str) -> str:
    """Where a local client reaches `service`'s API (https under --tls)."""
    return api_url(settings, service, local_host(settings.bind))


def run_argv(settings: Settings, service: str) -> list[str]:
    """The `wolfpack run` command line that starts `service` with these settings."""
    argv = [sys.executable, "-m", "libs.runtime.cli", "run", service]
    argv += ["--data", str(settings.data_dir.resolve()), "--nats", settings.nats_url]
    argv += ["--bind", settings.bind, "--port-offset", str(settings.port_offset)]
    argv += ["--log-level", settings.log_level]
    argv += ["--max-transfers", str(settings.max_transfers)]
    argv += ["--tls"] if settings.tls else []
    argv += [arg for name in settings.tls_names for arg in ("--tls-name", name)]
    argv += ["--bootd-stall-seconds", repr(settings.bootd_stall_seconds)]
    argv += ["--bootd-secure" if settings.bootd_secure else "--no-bootd-secure"]
    argv += ["--tftp-per-client", str(settings.tftp_per_client)]
    argv += ["--tftp-root", settings.tftp_root] if settings.tftp_root else []
    argv += ["--events-max-age", repr(settings.events_max_age)]
    argv += ["--events-max-bytes", str(settings.events_max_bytes)]
    return argv + (["--public-read"] if settings.public_read else [])


def child_env() -> dict[str, str]:
    """Our environment, plus the tree `libs` came from on the path (not installed: still runs)."""
    root = str(Path(libs.__file__).resolve().parent.parent)
    path = os.environ.get("PYTHONPATH")
    return os.environ | {
        "PYTHONPATH": f"{root}{os.pathsep}{path}" if path else root,
        "PYTHONUNBUFFERED": "1",
    }


def summary(settings: Settings, endpoints: Endpoints, network: ServerNetwork | None = None) -> str:
    lines = [f"wolfpack is up; data in {settings.data_dir.resolve()}"]
    for name, url in endpoints.services.items():
        lines.append(f"  {name:<9} {url}")
    api = endpoints.services["registry"] + names.API_PREFIX
    lines.append(f"  {'API':<9} {api}  (docs: {endpoints.services['registry']}/docs)")
    lines.append(f"  {'NATS':<9} {endpoints.nats}")
    if network is not None and network.dhcp_interface is not None:
        lines.append(f"  {'DHCP':<9} {dhcp.describe(network)}")
    lines.append(f"  {'token':<9} {endpoints.token_file}")
    if endpoints.ca_file is not None:
        lines.append(f"  {'CA':<9} {endpoints.ca_file}  (bootd boots nodes over plain HTTP)")
    lines.append("Stop with Ctrl+C.")
    return "\n".join(lines)


def check_store_fits(store: Path, cluster: ClusterMember | None) -> None:
    """Refuse to start a store in the other mode than it was made in: a single server's
    streams do not come along into a cluster (nats-server starts the cluster's empty beside
    them), nor a member's out of it."""
    was_member = (store / CLUSTER_CONFIG).exists()
    holds = any((store / "jetstream").glob("*/streams/*"))
    if cluster is not None and holds and not was_member:
        raise StartupFailed(
            f"{store} holds a single nats-server's streams: joining a cluster with "
            "--nats-route would leave them behind. Start the cluster empty and move the "
            "install's data into it (docs/scale-out.md)"
        )
    if cluster is None and was_member:
        raise StartupFailed(
            f"{store} belongs to a member of a NATS cluster ({CLUSTER_CONFIG}): start up "
            "with the same --nats-route and --nats-name flags"
        )


async def _start_nats(settings: Settings, cluster: ClusterMember | None) -> NatsServer:
    port = names.NATS_PORT + settings.port_offset
    check_store_fits(settings.data_dir / "nats", cluster)
    config = ensure_nats_auth(settings.data_dir)
    if cluster is not None:
        # One -c file: the member's, including the client token's beside it.
        config = write_config(config.parent / CLUSTER_CONFIG, cluster, include=config)
    nats = NatsServer(settings.data_dir / "nats", port=port, die_with_parent=True, config=config)
    # nats-server's own complaint is a page of banner; say it in one line.
    try:
        listen(nats.host, port).close()
    except StartupFailed as exc:
        raise StartupFailed(f"cannot start nats-server: {exc} (use it with --nats?)") from None
    try:
        await nats.start()
    except (OSError, RuntimeError, TimeoutError) as exc:
        lines = str(exc).splitlines() or [type(exc).__name__]
        reason = lines[0] if len(lines) == 1 else f"{lines[0]} {lines[-1].strip()}"
        raise StartupFailed(f"cannot start nats-server: {reason}") from None
    return nats


async def up(
    settings: Settings,
    nats_url: str | None = None,
    network: ServerNetwork | None = None,
    cluster: ClusterMember | None = None,
) -> None:
    """Run the whole stack until SIGINT/SIGTERM. `nats_url` None: start our own nats-server.
    `network` (checked flags): written into overlayd.yaml; with DHCP, dnsmasq runs too."""
    log = setup_logging("up", settings.log_level)
    data = settings.data_dir
    data.mkdir(parents=True, exist_ok=True)
    run_dir = data / "run"
    run_dir.mkdir(exist_ok=True)
    with only_up(run_dir):
        leftovers = await stop_leftovers(run_dir)
        if leftovers.ended:
            log.info("stopped an earlier up's processes: %s", ", ".join(leftovers.ended))
        if leftovers.killed:
            log.warning(
                "killed an earlier up's processes that did not stop within %.0f s: %s",
                LEFTOVERS_WITHIN,
                ", ".join(leftovers.killed),
            )
        await _up(settings, nats_url, network, cluster, log)


async def _up(
    settings: Settings,
    nats_url: str | None,
    network: ServerNetwork | None,
    cluster: ClusterMember | None,
    log: logging.Logger,
) -> None:
    data = settings.data_dir
    run_dir = data / "run"
    ensure_token(data)
    try:
        dnsmasq = dhcp.configure(settings, network, dhcp.reload_command(run_dir))
    except Invalid as err:
        raise StartupFailed(err.message) from None
    # After configure: overlayd.yaml now holds the address nodes use, which the cert must name.
    tls = _ensure_tls(settings, log) if settings.tls else None
    stop = asyncio.Event()
    try:
        with stopped_by_signals(stop):
            async with contextlib.AsyncExitStack() as stack:
                if nats_url is None:
                    nats = await _start_nats(settings, cluster)
                    stack.push_async_callback(nats.stop)  # stopped last: services go first
                    pid_file = run_dir / "nats-server.pid"
                    pid_file.write_text(f"{nats.pid}\n")
                    keeper = asyncio.create_task(
                        keep_running(nats, log, lambda pid: pid_file.write_text(f"{pid}\n"))
                    )
                    # Runs before nats.stop: a server stopped on purpose is not restarted.
                    stack.push_async_callback(_cancel, keeper)
                    nats_url = nats.url
                settings = msgspec.structs.replace(settings, nats_url=nats_url)
                endpoints = Endpoints(
                    nats=nats_url,
                    services={name: base_url(settings, name) for name in SERVICES},
                    token_file=str(settings.token_path.resolve()),
                    ca_file=str(tls.files.ca.resolve()) if tls is not None else None,
                )
                write_endpoints(data, endpoints)
                env = child_env()
                # dnsmasq first: its pid file is current before overlayd can signal it.
                children = [dnsmasq] if dnsmasq is not None else []
                children += [
                    Child(
                        name=name,
                        argv=run_argv(settings, name),
                        health_url=f"{endpoints.services[name]}/healthz",
                        env=env,
                    )
                    for name in SERVICES
                ]
                supervisor = Supervisor(
                    children, run_dir=run_dir, log=log, tls_ca=tls.files.ca if tls else None
                )
                stack.push_async_callback(supervisor.stop)
                await supervisor.start()
                ready = asyncio.create_task(
                    _announce(supervisor, summary(settings, endpoints, network), log)
                )
                await stop.wait()
                ready.cancel()
                log.info("stopping")
    finally:
        (run_dir / "nats-server.pid").unlink(missing_ok=True)
    log.info("stopped")


def _ensure_tls(settings: Settings, log: logging.Logger) -> TlsState:
    """DATA/tls before any service starts, covering the address nodes and other hosts use
    (`--ip`, overlayd.yaml's `ip`, else the host address overlayd finds): node agents fetch
    their runtime overlay from bootd's HTTPS port at that address."""
    try:
        ip = template_settings(load_config(settings.data_dir), settings).ip
    except Invalid as err:
        raise StartupFailed(err.message) from None
    try:
        state = ensure_tls(settings.data_dir, wanted_names(settings.bind, ip, settings.tls_names))
    except (OSError, ValueError, Invalid) as exc:
        raise StartupFailed(f"cannot set up TLS in {settings.data_dir}/tls: {exc}") from None
    if state.ca_created:
        log.info("made a private CA: %s (clients trust this file)", state.files.ca)
    if state.cert_issued:
        log.info("issued a server certificate for %s", ", ".join(sorted(state.names)))
    return state


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _announce(supervisor: Supervisor, text: str, log: logging.Logger) -> None:
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            await supervisor.wait_ready()
    except TimeoutError:
        lagging = ", ".join(supervisor.not_ready())
        log.warning("not ready after %gs: %s (still retrying)", READY_TIMEOUT, lagging)
    print(text, flush=True)
