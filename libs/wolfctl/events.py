"""`wolfctl events [--since TIME | --from SEQ|oldest] [--subject PATTERN]... [-f] [--gap MODE]`:
the WOLFPACK stream's events as JSON lines, one per event and flushed at once, for `jq` and
scripts: `{"seq": 812, "time": "...Z", "subject": "wolfpack.node.n1.updated", "event": {...}}`.

Without a start it prints every event the stream keeps and exits; with -f it prints the new
ones as they come (as `nats sub` and `tail -f` do), until Ctrl-C. Events the stream no longer
has are never skipped in silence: exit status 3 and a line on stderr (libs/common/bus/gaps.py),
or with `--gap warn` the line, and reading goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import sys
from typing import TYPE_CHECKING, Final

import click
import msgspec

from libs.common import subjects
from libs.common.apiclient.config import ENV_NATS, nats_url
from libs.common.bus.auth import refused, shown_url
from libs.common.bus.gaps import FellBehind, FromSeq, Gap, New, Oldest, Since, Start
from libs.common.errors import Invalid, WolfpackError
from libs.common.moments import EXAMPLES, parse_time
from libs.wolfctl.context import run
from libs.wolfctl.groups import PROG
from libs.wolfctl.natsconn import connect_once

if TYPE_CHECKING:
    from nats.aio.client import Client

    from libs.common.bus.replay import Event

# Exit status when events asked for are gone (1: any other error, 2: a usage error), and when
# Ctrl-C cut short a read that was to end by itself (128 + SIGINT, as a shell says it).
EXIT_GONE: Final = 3
EXIT_INTERRUPTED: Final = 130
# Seconds between tries to get NATS back while following.
RECONNECT_WAIT: Final = 1.0
CONNECT_TIMEOUT: Final = 2.0


class Line(msgspec.Struct):
    """One output line. `event` is the payload as published (a JSON object); a payload that is
    not JSON (not wolfpack's) has `event` null and its text in `raw`."""

    seq: int
    time: datetime.datetime
    subject: str
    event: msgspec.Raw | None
    raw: str | msgspec.UnsetType = msgspec.UNSET


def line_of(event: Event) -> bytes:
    try:
        msgspec.json.decode(event.data)
    except msgspec.DecodeError:
        line = Line(event.seq, event.time, event.subject, None, event.data.decode(errors="replace"))
    else:
        line = Line(event.seq, event.time, event.subject, msgspec.Raw(event.data))
    return msgspec.json.encode(line) + b"\n"


def choose_start(
    since: str | None, first: str | None, follow: bool, now: datetime.datetime
) -> Start:
    """Where to start: --since TIME, --from SEQ or `oldest`; by default the oldest kept event,
    or (following) the next new one."""
    if since is not None and first is not None:
        raise click.UsageError("give --since or --from, not both")
    if since is not None:
        try:
            return Since(parse_time(since, now))
        except Invalid as err:
            raise click.BadParameter(err.message, param_hint="--since") from None
    if first is not None:
        if first.strip().lower() == "oldest":
            return Oldest()
        try:
            return FromSeq(int(first))
        except ValueError:
            raise click.BadParameter(
                f"{first!r}: want a stream sequence (1 or more) or `oldest`", param_hint="--from"
            ) from None
    return New() if follow else Oldest()


class _Closed(Exception):
    """Whoever read our output went away (`| head`): nothing more to do."""


def _write(data: bytes) -> None:
    try:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()  # a pipe sees each event as it comes
    except BrokenPipeError:
        # Python would complain again flushing stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise _Closed from None


def _warn(gap: Gap) -> None:
    click.echo(f"{PROG}: warning: {gap.message()}", err=True)


def _gone(err: FellBehind) -> click.exceptions.Exit:
    w = err.gap.window
    again = w.next_seq if w.empty else w.first_seq
    click.echo(
        f"{PROG}: error: {err.gap.message()}; read on from what is kept with --from {again}, "
        "or let --gap warn go past what is gone",
        err=True,
    )
    return click.exceptions.Exit(EXIT_GONE)


async def _connect(url: str) -> Client:
    import nats.errors

    try:
        return await connect_once(
            url, connect_timeout=CONNECT_TIMEOUT, ping_interval=10, max_outstanding_pings=2
        )
    except Exception as err:
        if refused(err):
            raise WolfpackError(
                f"NATS at {shown_url(url)} refused us: {err} (wolfpack up's NATS wants "
                "DATA/nats.token: run as its owner, or give its token in the URL)"
            ) from None
        if isinstance(err, nats.errors.NoServersError | OSError | TimeoutError):
            raise WolfpackError(
                f"cannot reach NATS at {shown_url(url)} (set ${ENV_NATS} or --nats)"
            ) from None
        raise


async def _read(url: str, start: Start, filters: list[str], follow: bool, warn: bool) -> None:
    """Print the events; following, a lost NATS is waited for and reading goes on exactly
    where it stopped."""
    import nats.errors

    from libs.common.bus.replay import Replay

    nc = await _connect(url)
    while True:
        replay = Replay(nc, start, filters, follow=follow, on_gap=_warn if warn else None)
        try:
            async with contextlib.aclosing(replay.events()) as events:
                async for event in events:
                    _write(line_of(event))
            return
        except (nats.errors.ConnectionClosedError, nats.errors.TimeoutError, OSError) as err:
            if not follow:
                raise WolfpackError(f"lost NATS at {shown_url(url)}: {err or 'closed'}") from None
        finally:
            with contextlib.suppress(Exception):
                await nc.close()
        start = replay.resume()
        click.echo(f"{PROG}: lost NATS at {shown_url(url)}; reconnecting", err=True)
        while True:
            await asyncio.sleep(RECONNECT_WAIT)  # nothing to await: the server is away
            with contextlib.suppress(WolfpackError):
                nc = await _connect(url)
                break
        click.echo(f"{PROG}: reconnected; reading on from {_shown(start)}", err=True)


def _shown(start: Start) -> str:
    return f"event {start.seq}" if isinstance(start, FromSeq) else "where it stopped"


@click.command(
    "events",
    help="Print the WOLFPACK stream's events, one JSON line each: "
    '{"seq", "time", "subject", "event"}. Without --since or --from: every event kept, then '
    "exit; with -f: new events until Ctrl-C. Events asked for that the stream no longer keeps "
    f"(its retention) end it with status {EXIT_GONE}, unless --gap warn.",
)
@click.option(
    "--since",
    metavar="TIME",
    help=f"start at the first event at or after TIME: ISO 8601 (local time without an "
    f"offset) or a duration ago ({EXAMPLES})",
)
@click.option(
    "--from",
    "first",
    metavar="SEQ",
    help="start at stream sequence SEQ (each line's `seq`), or at `oldest` kept",
)
@click.option(
    "--subject",
    "filters",
    metavar="PATTERN",
    multiple=True,
    help=f"only events whose subject matches the NATS pattern (repeatable; default "
    f"{subjects.ALL}), e.g. {subjects.every('node', 'boot')}",
)
@click.option(
    "-f",
    "--follow",
    is_flag=True,
    help="go on printing new events until interrupted (alone: only new ones)",
)
@click.option(
    "--gap",
    type=click.Choice(["fail", "warn"]),
    default="fail",
    show_default=True,
    help=f"when events asked for are gone: exit {EXIT_GONE} (fail), or say so and go on (warn)",
)
@click.option(
    "--nats",
    metavar="URL",
    help=f"NATS server (default: ${ENV_NATS}, else DATA/endpoints.json, else "
    "nats://127.0.0.1:4222)",
)
def command(
    since: str | None,
    first: str | None,
    filters: tuple[str, ...],
    follow: bool,
    gap: str,
    nats: str | None,
) -> None:
    start = choose_start(since, first, follow, datetime.datetime.now(datetime.UTC))
    try:
        patterns = subjects.check_patterns(filters or (subjects.ALL,))
    except Invalid as err:
        raise click.BadParameter(err.message, param_hint="--subject") from None
    url = nats or nats_url(os.environ)
    try:
        run(_read(url, start, patterns, follow, warn=gap == "warn"))
    except FellBehind as err:
        raise _gone(err) from None
    except KeyboardInterrupt:
        if not follow:  # cut short: not everything asked for was printed
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
        # Ctrl-C is how following ends
    except _Closed:
        pass  # the reader left (`| head`): it has what it wanted
