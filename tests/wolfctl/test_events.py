"""`wolfctl events` as a user runs it (a process, its lines, its exit status) against a real
nats-server: JSON lines a pipe sees at once, the start points and filters, following until
Ctrl-C or a closed pipe or through a NATS restart, and events the stream no longer keeps: exit
3 with the reason, or a warning and reading on."""

from __future__ import annotations

import asyncio
import datetime
import json
import re
import shlex
import signal
import subprocess
from typing import Any

import msgspec
import pytest

from libs.common import names, subjects
from libs.common.bus.connection import Bus
from libs.common.bus.gaps import FromSeq, New, Oldest, Since, Start
from libs.common.bus.replay import Event
from libs.common.bus.retention import Retention
from libs.common.bus.server import NatsServer, free_port
from libs.common.bus.stream_state import stream_window
from libs.wolfctl.events import choose_start, line_of
from tests.cli import REPO, argv, cli_running, environment, run_cli_async
from tests.waiting import eventually

WAIT = 20.0


class Ping(msgspec.Struct):
    n: int
    pad: str = ""


async def publish(bus: Bus, count: int, *, first: int = 0, pad: int = 0) -> None:
    """Events n = first.. first+count-1 of node n<n%3> (`wolfpack.node.n<k>.updated`)."""
    for n in range(first, first + count):
        await bus.publish(subjects.node(f"n{n % 3}", "updated"), Ping(n, "x" * pad))


async def events(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return await run_cli_async("wolfctl", "events", *args, env={"WOLFPACK_NATS": url}, within=60)


def parsed(stdout: str) -> list[dict[str, Any]]:
    """Each line on its own, as `jq` reads them."""
    return [json.loads(line) for line in stdout.splitlines()]


def ns(lines: list[dict[str, Any]]) -> list[int]:
    return [line["event"]["n"] for line in lines]


async def until_reading(bus: Bus) -> None:
    """Until the follower's consumer is on the server (nothing else announces it)."""
    await eventually(
        lambda: bus.js.stream_info(names.STREAM),
        "wolfctl's consumer",
        within=WAIT,
        until=lambda info: info.state.consumer_count >= 1,
    )


async def next_line(process: asyncio.subprocess.Process) -> dict[str, Any]:
    assert process.stdout is not None
    async with asyncio.timeout(WAIT):
        text = await process.stdout.readline()
    assert text.endswith(b"\n"), text
    found: dict[str, Any] = json.loads(text)
    return found


def one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


async def test_every_kept_event_one_json_line_each_then_it_exits(
    nats_server: NatsServer, bus: Bus
) -> None:
    before = datetime.datetime.now(datetime.UTC)
    await publish(bus, 3)
    await bus.nc.publish(subjects.node("odd", "updated"), b"not json")  # not wolfpack's
    await bus.nc.flush()
    done = await events(nats_server.url)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    lines = parsed(done.stdout)
    assert [sorted(line) for line in lines[:3]] == [["event", "seq", "subject", "time"]] * 3
    assert [(line["seq"], line["subject"], line["event"]) for line in lines[:3]] == [
        (1, "wolfpack.node.n0.updated", {"n": 0, "pad": ""}),
        (2, "wolfpack.node.n1.updated", {"n": 1, "pad": ""}),
        (3, "wolfpack.node.n2.updated", {"n": 2, "pad": ""}),
    ]
    for line in lines:
        assert line["time"].endswith("Z")
        when = datetime.datetime.fromisoformat(line["time"])
        assert before - datetime.timedelta(seconds=1) <= when <= datetime.datetime.now(datetime.UTC)
    assert lines[3] == {
        "seq": 4,
        "time": lines[3]["time"],
        "subject": "wolfpack.node.odd.updated",
        "event": None,
        "raw": "not json",
    }


async def test_start_points_and_subjects(nats_server: NatsServer, bus: Bus) -> None:
    await publish(bus, 4)
    middle = datetime.datetime.now(datetime.UTC)
    await publish(bus, 4, first=4)
    await bus.publish(subjects.image("rocky", "built"), Ping(100))
    url = nats_server.url
    assert ns(parsed((await events(url, "--from", "6")).stdout)) == [5, 6, 7, 100]
    assert ns(parsed((await events(url, "--from", "oldest")).stdout)) == [*range(8), 100]
    assert ns(parsed((await events(url, "--since", "10m")).stdout)) == [*range(8), 100]
    since = middle.isoformat().replace("+00:00", "Z")
    assert ns(parsed((await events(url, "--since", since)).stdout)) == [4, 5, 6, 7, 100]
    assert ns(parsed((await events(url, "--since", "now")).stdout)) == []
    # A line's time given back starts at that line's event.
    third = parsed((await events(url, "--from", "3")).stdout)[0]
    assert parsed((await events(url, "--since", third["time"])).stdout)[0]["seq"] == 3
    both = ("--subject", "wolfpack.node.n1.>", "--subject", subjects.every("image"))
    assert ns(parsed((await events(url, *both)).stdout)) == [1, 4, 7, 100]
    boots = await events(url, "--subject", subjects.every("node", "boot"))
    assert (boots.returncode, boots.stdout) == (0, "")


async def test_following_prints_each_new_event_at_once_until_ctrl_c(
    nats_server: NatsServer, bus: Bus
) -> None:
    await publish(bus, 2)  # there before: -f alone shows only what comes
    env = {"WOLFPACK_NATS": nats_server.url}
    async with cli_running("wolfctl", "events", "-f", env=env) as follower:
        await until_reading(bus)
        for n in (2, 3):
            await publish(bus, 1, first=n)
            # The line is out before the next event is even published: flushed per line.
            line = await next_line(follower)
            assert (line["seq"], line["event"]["n"]) == (n + 1, n)
        follower.send_signal(signal.SIGINT)
        async with asyncio.timeout(WAIT):
            assert await follower.wait() == 0
        assert follower.stderr is not None
        assert (await follower.stderr.read()) == b""


async def test_following_from_a_start_prints_the_backlog_then_new_ones(
    nats_server: NatsServer, bus: Bus
) -> None:
    await publish(bus, 3)
    env = {"WOLFPACK_NATS": nats_server.url}
    async with cli_running("wolfctl", "events", "-f", "--from", "2", env=env) as follower:
        assert [(await next_line(follower))["seq"] for _ in range(2)] == [2, 3]
        await publish(bus, 1, first=3)
        assert (await next_line(follower))["seq"] == 4


async def test_a_reader_that_leaves_ends_it_quietly(nats_server: NatsServer, bus: Bus) -> None:
    """`wolfctl events -f | head -1`: head exits, wolfctl ends at its next line, status 0 and
    nothing on stderr (no BrokenPipeError)."""
    await publish(bus, 1)
    command = shlex.join(argv("wolfctl", "events", "-f", "--from", "oldest"))
    pipeline = await asyncio.create_subprocess_exec(
        "bash", "-o", "pipefail", "-c", f"{command} | head -1",
        cwd=REPO,
        env=environment({"WOLFPACK_NATS": nats_server.url}),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert pipeline.stdout is not None
    async with asyncio.timeout(WAIT):
        assert json.loads(await pipeline.stdout.readline())["seq"] == 1
    await publish(bus, 2, first=1)  # wolfctl finds head gone when it writes this
    async with asyncio.timeout(WAIT):
        out, err = await pipeline.communicate()
    assert (pipeline.returncode, out, err) == (0, b"", b"")


async def test_following_goes_on_through_a_nats_restart(nats_server: NatsServer) -> None:
    bus = await Bus.connect(nats_server.url, "test")
    await publish(bus, 1)
    env = {"WOLFPACK_NATS": nats_server.url}
    async with cli_running("wolfctl", "events", "-f", "--from", "1", env=env) as follower:
        assert (await next_line(follower))["seq"] == 1
        await bus.close()
        await nats_server.stop()
        assert follower.stderr is not None
        async with asyncio.timeout(WAIT):
            said = (await follower.stderr.readline()).decode()
        assert said.startswith("wolfctl: lost NATS at ") and said.endswith("; reconnecting\n")
        await nats_server.start()  # same port and store: the stream is still there
        async with asyncio.timeout(WAIT):
            said = (await follower.stderr.readline()).decode()
        assert said == "wolfctl: reconnected; reading on from event 2\n"
        bus = await Bus.connect(nats_server.url, "test")
        try:
            await publish(bus, 2, first=1)
            assert [(await next_line(follower))["seq"] for _ in range(2)] == [2, 3]
        finally:
            await bus.close()


async def test_events_gone_end_it_with_status_3_and_the_reason(
    nats_server: NatsServer, small: Bus
) -> None:
    await publish(small, 300, pad=50)
    window = await stream_window(small.nc)
    first = window.first_seq
    done = await events(nats_server.url, "--from", "5")
    assert done.returncode == 3 and done.stdout == ""
    said = one_line(done.stderr)
    assert re.fullmatch(
        rf"wolfctl: error: events 5\.\.{first - 1} are gone: the stream keeps 7 days / 16 KiB "
        rf"\(first kept: {first} at \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ\); read on from what is "
        rf"kept with --from {first}, or let --gap warn go past what is gone",
        said,
    ), said
    # --since a time the discarded events may reach: the same.
    done = await events(nats_server.url, "--since", "1d")
    assert done.returncode == 3 and done.stdout == ""
    assert f"events 1..{first - 1} are gone" in one_line(done.stderr)
    # What the message says to do works.
    done = await events(nats_server.url, "--from", str(first))
    assert done.returncode == 0 and done.stderr == ""
    assert [line["seq"] for line in parsed(done.stdout)] == list(range(first, 301))


async def test_gap_warn_says_so_and_reads_what_is_kept(nats_server: NatsServer, small: Bus) -> None:
    await publish(small, 300, pad=50)
    first = (await stream_window(small.nc)).first_seq
    done = await events(nats_server.url, "--from", "5", "--gap", "warn")
    assert done.returncode == 0
    assert one_line(done.stderr).startswith(f"wolfctl: warning: events 5..{first - 1} are gone")
    assert [line["seq"] for line in parsed(done.stdout)] == list(range(first, 301))


async def test_a_follower_too_slow_for_the_retention_is_stopped_and_told(
    nats_server: NatsServer,
) -> None:
    """Its reader stalls (the pipe fills, wolfctl waits) while the stream, 256 KiB, takes
    3 MiB: once read again it says it fell behind, exits 3, and what it printed has no hole."""
    bus = await Bus.connect(nats_server.url, "test", retention=Retention(max_bytes=256 * 1024))
    try:
        await publish(bus, 1)
        env = {"WOLFPACK_NATS": nats_server.url}
        async with cli_running("wolfctl", "events", "-f", "--from", "1", env=env) as follower:
            assert (await next_line(follower))["seq"] == 1
            await publish(bus, 750, first=1, pad=4000)  # nobody reads wolfctl's output now
            assert follower.stdout is not None and follower.stderr is not None
            async with asyncio.timeout(WAIT * 3):
                out = await follower.stdout.read()
                status = await follower.wait()
            err = (await follower.stderr.read()).decode()
    finally:
        await bus.close()
    assert status == 3, err
    said = one_line(err)
    assert said.startswith("wolfctl: error: fell behind: events "), said
    gone = re.search(r"events (\d+)\.\.(\d+) are gone", said)
    assert gone is not None
    seqs = [1, *(line["seq"] for line in parsed(out.decode()))]
    assert seqs == list(range(1, int(gone.group(1))))


async def test_no_nats_is_one_line_and_status_1() -> None:
    done = await events(f"nats://127.0.0.1:{free_port()}")
    assert done.returncode == 1 and done.stdout == ""
    assert one_line(done.stderr).startswith("wolfctl: error: cannot reach NATS at nats://")


async def test_a_nats_without_the_stream_says_so(nats_server: NatsServer) -> None:
    done = await events(nats_server.url)
    assert done.returncode == 1
    assert "NATS has no stream WOLFPACK (yet)" in one_line(done.stderr)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--from", "x"], "want a stream sequence (1 or more) or `oldest`"),
        (["--from", "0"], "want a stream sequence (1 or more) or `oldest`"),
        (["--since", "last tuesday"], "is not a time"),
        (["--since", "1h", "--from", "3"], "give --since or --from, not both"),
        (["--subject", "node.>"], "matches no event"),
        (["--subject", "wolfpack.>", "--subject", "wolfpack.node.>"], "overlap"),
        (["--gap", "skip"], "'skip' is not one of 'fail', 'warn'"),
    ],
)
async def test_bad_flags_are_a_usage_error_naming_them(args: list[str], says: str) -> None:
    done = await events("nats://127.0.0.1:1", *args)
    assert done.returncode == 2 and says in done.stderr, done.stderr


# --- the pure parts: where it starts, what a line is ----------------------------------------

NOW = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("since", "first", "follow", "start"),
    [
        (None, None, False, Oldest()),
        (None, None, True, New()),
        (None, "oldest", True, Oldest()),
        (None, " Oldest ", False, Oldest()),
        (None, "42", True, FromSeq(42)),
        ("2h", None, False, Since(NOW - datetime.timedelta(hours=2))),
        ("now", None, True, Since(NOW)),
    ],
)
def test_where_it_starts(since: str | None, first: str | None, follow: bool, start: Start) -> None:
    assert choose_start(since, first, follow, NOW) == start


def test_a_line_is_the_payload_as_published() -> None:
    event = Event(seq=7, time=NOW, subject="wolfpack.node.n1.updated", data=b'{"b":1,"a":[2]}')
    assert line_of(event) == (
        b'{"seq":7,"time":"2024-05-01T12:00:00Z","subject":"wolfpack.node.n1.updated",'
        b'"event":{"b":1,"a":[2]}}\n'
    )
    odd = Event(seq=8, time=NOW, subject="wolfpack.x", data=b"\xff{")
    assert json.loads(line_of(odd)) == {
        "seq": 8,
        "time": "2024-05-01T12:00:00Z",
        "subject": "wolfpack.x",
        "event": None,
        "raw": "\ufffd{",
    }
