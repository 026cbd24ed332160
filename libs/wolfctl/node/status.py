"""`wolfctl node status [-w] [-o json]`: each node's last boot stage, from bootd; with -w the
table is redrawn as `wolfpack.node.*.boot` events arrive over NATS."""

from __future__ import annotations

import contextlib
import datetime
import os
import ssl
from collections.abc import Mapping
from typing import Final

import click
import msgspec

from libs.common import endpoints, names
from libs.common.models.boot_stage import BootStage
from libs.common.models.boot_status import NodeBootStatus
from libs.common.natsauth import refused, shown_url
from libs.wolfctl.client import Unreachable, error_from_response
from libs.wolfctl.config import data_dir, resolve
from libs.wolfctl.context import globals_of, output_format, output_option, run
from libs.wolfctl.image.client import nats_token_for, nats_url
from libs.wolfctl.output import dump, echo, table

ENV_BOOTD_URL: Final = "WOLFPACK_BOOTD_URL"
DEFAULT_BOOTD_URL: Final = f"http://127.0.0.1:{names.PORTS['bootd']}"
HEADERS: Final = ("NODE", "STAGE", "WHEN", "FROM")
TIMELINE: Final = 32


def bootd_url(env: Mapping[str, str]) -> str:
    """$WOLFPACK_BOOTD_URL, DATA/endpoints.json (written by `wolfpack up`), else this host."""
    if env.get(ENV_BOOTD_URL):
        return env[ENV_BOOTD_URL]
    try:
        found = endpoints.read_endpoints(data_dir(env)).services.get("bootd")
    except (OSError, msgspec.DecodeError):
        found = None
    return found or DEFAULT_BOOTD_URL


def when(at: float) -> str:
    return datetime.datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M:%S")


def rows(statuses: list[NodeBootStatus]) -> list[list[str]]:
    return [
        [s.node, s.stage if s.ok else f"{s.stage} (failed: {s.error})", when(s.at), s.remote]
        for s in statuses
    ]


async def fetch(
    url: str, token: str | None, verify: ssl.SSLContext | bool = True
) -> list[NodeBootStatus]:
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        async with httpx.AsyncClient(timeout=30, verify=verify) as client:
            answer = await client.get(
                f"{url.rstrip('/')}{names.API_PREFIX}/status", headers=headers
            )
    except httpx.HTTPError as err:
        raise Unreachable(
            f"cannot reach bootd at {url}: {err} (set ${ENV_BOOTD_URL} if it runs elsewhere)"
        ) from None
    if answer.status_code >= 400:
        raise error_from_response(answer.status_code, answer.content)
    return msgspec.json.decode(answer.content, type=list[NodeBootStatus])


def apply(statuses: dict[str, NodeBootStatus], event: BootStage) -> None:
    """Fold a live event into the table's rows."""
    found = statuses.get(event.node)
    timeline = [*(found.timeline if found else []), event][-TIMELINE:]
    statuses[event.node] = NodeBootStatus(
        node=event.node,
        stage=event.stage,
        at=event.at,
        remote=event.remote,
        ok=event.ok,
        error=event.error,
        timeline=timeline,
    )


async def _quiet(err: Exception) -> None:
    """nats.py would print each connect error; the exception raised says it once."""


def render(statuses: list[NodeBootStatus], fmt: str) -> str:
    return dump(statuses, fmt) if fmt != "table" else table(HEADERS, rows(statuses))


async def watch(url: str, token: str | None, fmt: str, verify: ssl.SSLContext | bool) -> None:
    import nats

    bus = nats_url(os.environ)
    try:
        # No retry of a first connect: a refused token or no server is said at once.
        nc = await nats.connect(
            bus,
            connect_timeout=2,
            token=nats_token_for(os.environ, bus),
            allow_reconnect=False,
            error_cb=_quiet,
        )
    except Exception as err:
        hint = " (wolfpack up's NATS wants DATA/nats.token: run as its owner)" * refused(err)
        raise click.ClickException(f"cannot follow NATS at {shown_url(bus)}: {err}{hint}") from None
    try:
        sub = await nc.subscribe(names.node_subject("*", "boot"))
        # Subscribed first, so nothing between the snapshot and the first event is lost.
        statuses = {s.node: s for s in await fetch(url, token, verify)}
        click.clear()
        echo(render(list(statuses.values()), fmt))
        if fmt != "table":
            echo("\n")
        decoder = msgspec.json.Decoder(BootStage)
        async for msg in sub.messages:
            try:
                apply(statuses, decoder.decode(msg.data))
            except msgspec.DecodeError:
                continue
            if fmt == "table":
                click.clear()
                echo(render([statuses[k] for k in sorted(statuses)], fmt))
            else:
                echo(msg.data.decode() + "\n")  # one event per line
    finally:
        await nc.close()


@click.command("status", help="Show each node's last boot stage (from bootd).")
@click.option("-w", "--watch", "follow", is_flag=True, help="keep following boot events")
@output_option
@click.pass_context
def command(ctx: click.Context, follow: bool, output: str | None) -> None:
    fmt = output_format(ctx, output)
    config = resolve(os.environ, token=globals_of(ctx).token)
    url = bootd_url(os.environ)
    if follow:
        with contextlib.suppress(KeyboardInterrupt):
            run(watch(url, config.token, fmt, config.verify()))
        return
    echo(render(run(fetch(url, config.token, config.verify())), fmt))
