"""`wolfctl node status [-w] [-o json]`: each node's last boot stage, from bootd; with -w the
table is redrawn as `wolfpack.node.*.boot` events arrive over NATS."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import ssl
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

import click
import msgspec

from libs.common import names, subjects
from libs.common.apiclient.client import Unreachable, error_from_response
from libs.common.apiclient.config import ENV_URLS, nats_url, resolve
from libs.common.bus.auth import refused, shown_url
from libs.common.models.boot_stage import BootStage
from libs.common.models.boot_status import NodeBootStatus
from libs.wolfctl.context import globals_of, output_format, output_option, run
from libs.wolfctl.natsconn import connect_once
from libs.wolfctl.output import dump, echo, table

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.subscription import Subscription

HEADERS: Final = ("NODE", "STAGE", "WHEN", "FROM")
TIMELINE: Final = 32
# Seconds between tries to get NATS and bootd back while following.
RECONNECT_WAIT: Final = 1.0


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
            f"cannot reach bootd at {url}: {err} (set ${ENV_URLS['bootd']} if it runs elsewhere)"
        ) from None
    if answer.status_code >= 500:  # restarting or overloaded: a watch waits for it
        raise BootdUnavailable(str(error_from_response(answer.status_code, answer.content)))
    if answer.status_code >= 400:
        raise error_from_response(answer.status_code, answer.content)
    return msgspec.json.decode(answer.content, type=list[NodeBootStatus])


class BootdUnavailable(Unreachable):
    """bootd answered 5xx."""


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


def render(statuses: list[NodeBootStatus], fmt: str) -> str:
    return dump(statuses, fmt) if fmt != "table" else table(HEADERS, rows(statuses))


def missed(before: Mapping[str, NodeBootStatus], now: list[NodeBootStatus]) -> list[BootStage]:
    """Stages in bootd's timelines that `before` did not have: the events that went by while
    the watch was away from NATS, oldest first. A stage older than everything `before` kept
    of its node was shown long ago (and trimmed since)."""
    found: list[BootStage] = []
    for status in now:
        known = before.get(status.node)
        shown = known.timeline if known is not None else []
        since = min((stage.at for stage in shown), default=float("-inf"))
        found += [stage for stage in status.timeline if stage not in shown and stage.at >= since]
    return sorted(found, key=lambda stage: stage.at)


class _Lost(Exception):
    """NATS or bootd went away: the watch reconnects."""


async def _open(
    bus: str, url: str, token: str | None, verify: ssl.SSLContext | bool
) -> tuple[Client, Subscription, list[NodeBootStatus]]:
    """Connected, subscribed, and bootd's snapshot: subscribed first, so nothing between the
    snapshot and the first event is lost. _Lost if NATS or bootd cannot be reached; a NATS
    that refuses our token is a ClickException."""
    import nats

    try:
        nc = await connect_once(
            bus,
            connect_timeout=2,
            # A server that vanished without closing (a partition, a dead host) is noticed
            # within ~30 s, not nats.py's default of minutes.
            ping_interval=10,
            max_outstanding_pings=2,
        )
    except Exception as err:
        if refused(err):
            raise click.ClickException(
                f"cannot follow NATS at {shown_url(bus)}: {err} "
                "(wolfpack up's NATS wants DATA/nats.token: run as its owner)"
            ) from None
        raise _Lost(f"cannot follow NATS at {shown_url(bus)}: {err}") from None
    try:
        sub = await nc.subscribe(subjects.every("node", "boot"))
        await nc.flush(timeout=2)  # the server has the subscription before the snapshot
        return nc, sub, await fetch(url, token, verify)
    except (Unreachable, nats.errors.Error) as err:
        await nc.close()
        raise _Lost(str(err)) from None
    except BaseException:
        await nc.close()
        raise


async def _reopen(
    bus: str, url: str, token: str | None, verify: ssl.SSLContext | bool
) -> tuple[Client, Subscription, list[NodeBootStatus]]:
    """_open, tried again every RECONNECT_WAIT seconds until NATS and bootd are back."""
    echo_err(f"wolfctl: lost NATS at {shown_url(bus)}; reconnecting")
    while True:
        try:
            opened = await _open(bus, url, token, verify)
        except _Lost:
            await asyncio.sleep(RECONNECT_WAIT)  # nothing to await: the server is away
            continue
        echo_err("wolfctl: reconnected to NATS")
        return opened


async def watch(url: str, token: str | None, fmt: str, verify: ssl.SSLContext | bool) -> None:
    """Follow boot events until interrupted; when NATS (or bootd) goes away, wait for it and
    go on, catching up on what was missed from bootd's timelines."""
    loop = asyncio.get_running_loop()
    bus = nats_url(os.environ)
    try:
        nc, sub, snapshot = await _open(bus, url, token, verify)
    except _Lost as lost:
        raise click.ClickException(str(lost)) from None
    statuses = {s.node: s for s in snapshot}
    click.clear()
    echo(render(list(statuses.values()), fmt))
    if fmt != "table":
        echo("\n")
    decoder = msgspec.json.Decoder(BootStage)
    while True:
        opened = loop.time()
        try:
            async for msg in sub.messages:  # ends when the connection does
                try:
                    event = decoder.decode(msg.data)
                except msgspec.DecodeError:
                    continue
                show(statuses, [event], fmt)
        finally:
            await nc.close()
        if loop.time() - opened < RECONNECT_WAIT:
            await asyncio.sleep(RECONNECT_WAIT)  # a session that dies at once: no busy loop
        nc, sub, snapshot = await _reopen(bus, url, token, verify)
        try:
            show(statuses, missed(statuses, snapshot), fmt, redraw=False)
            statuses.update({s.node: s for s in snapshot})  # bootd's view is the truth
            if fmt == "table":
                show(statuses, [], fmt)
        except BaseException:
            await nc.close()
            raise


def show(
    statuses: dict[str, NodeBootStatus], events: list[BootStage], fmt: str, *, redraw: bool = True
) -> None:
    """Fold `events` into the table and redraw it, or print them one per line. An event the
    node's timeline has already is skipped: bootd's snapshot had it, and NATS delivers it
    now (bootd publishes what it held while NATS was away)."""
    for event in events:
        known = statuses.get(event.node)
        if known is not None and event in known.timeline:
            continue
        apply(statuses, event)
        if fmt != "table":
            echo(msgspec.json.encode(event).decode() + "\n")
    if fmt == "table" and redraw:
        click.clear()
        echo(render([statuses[k] for k in sorted(statuses)], fmt))


def echo_err(line: str) -> None:
    click.echo(line, err=True)


@click.command("status", help="Show each node's last boot stage (from bootd).")
@click.option("-w", "--watch", "follow", is_flag=True, help="keep following boot events")
@output_option
@click.pass_context
def command(ctx: click.Context, follow: bool, output: str | None) -> None:
    fmt = output_format(ctx, output)
    config = resolve(os.environ, service="bootd", token=globals_of(ctx).token)
    url = config.url
    if follow:
        with contextlib.suppress(KeyboardInterrupt):
            run(watch(url, config.token, fmt, config.verify()))
        return
    echo(render(run(fetch(url, config.token, config.verify())), fmt))
