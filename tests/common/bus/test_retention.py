"""The WOLFPACK stream's retention against a real nats-server: a service's connect makes the
stream with its limits or sets them on the one there, anyone else's leaves them alone, and the
server discards the oldest events by age and by size, keeping one unbroken run of sequences."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from nats.js import api

from libs.common import names, subjects
from libs.common.bus.connection import Bus
from libs.common.bus.retention import DEFAULT_MAX_AGE, DEFAULT_MAX_BYTES, Retention
from libs.common.bus.server import NatsServer, free_port
from libs.common.bus.stream_state import stream_window
from tests.stack import connected_bus, nats_client
from tests.waiting import eventually


class Ping(msgspec.Struct):
    n: int
    pad: str = ""


async def limits(bus: Bus) -> tuple[float, int, int]:
    """The stream's max age (s), max bytes and per-subject cap (-1: none)."""
    config = (await bus.js.stream_info(names.STREAM)).config
    return config.max_age or 0.0, config.max_bytes or 0, config.max_msgs_per_subject or -1


async def connect(url: str, retention: Retention | None) -> Bus:
    return await Bus.connect(url, "test-retention", retention=retention)


async def test_a_client_without_limits_makes_the_stream_with_the_defaults(
    nats_server: NatsServer,
) -> None:
    async with connected_bus(nats_server.url) as bus:
        assert await limits(bus) == (DEFAULT_MAX_AGE, DEFAULT_MAX_BYTES, -1)
        info = await bus.js.stream_info(names.STREAM)
        assert info.config.discard == api.DiscardPolicy.OLD
        assert info.config.subjects == [subjects.ALL]
    assert DEFAULT_MAX_AGE == 7 * 86400 and DEFAULT_MAX_BYTES == 1024**3


async def test_a_service_sets_its_limits_and_a_client_leaves_them(nats_server: NatsServer) -> None:
    service = await connect(nats_server.url, Retention(max_age=3600, max_bytes=65536))
    try:
        assert await limits(service) == (3600, 65536, -1)
        # A CLI, a test, a bench: the stream stays as the services set it.
        async with connected_bus(nats_server.url, "cli") as cli:
            assert await limits(cli) == (3600, 65536, -1)
        # A service started with other settings sets those (the last one started wins).
        again = await connect(nats_server.url, Retention(max_age=60, max_bytes=0))
        await again.close()
        assert await limits(service) == (60, -1, -1)
    finally:
        await service.close()


async def test_an_older_stream_with_a_cap_per_subject_gets_the_retention(
    nats_server: NatsServer,
) -> None:
    # What the previous version made: the newest 64 events of each subject, no age or size.
    async with nats_client(nats_server.url) as nc:
        js = nc.jetstream()
        await js.add_stream(
            api.StreamConfig(
                name=names.STREAM,
                subjects=[subjects.ALL],
                storage=api.StorageType.FILE,
                max_msgs_per_subject=64,
            )
        )
        for n in range(100):
            await js.publish(subjects.node("n1", "updated"), msgspec.json.encode(Ping(n)))
    service = await connect(nats_server.url, Retention(max_age=3600, max_bytes=1024**2))
    try:
        assert await limits(service) == (3600, 1024**2, -1)
        await service.publish(subjects.node("n1", "updated"), Ping(100))
        window = await stream_window(service.nc)
        # Kept are the 64 of before, and from now on every event: no per-subject trimming.
        assert (window.first_seq, window.last_seq) == (37, 101)
        assert (await service.js.stream_info(names.STREAM)).state.messages == 65
    finally:
        await service.close()


async def test_events_older_than_max_age_are_discarded(nats_server: NatsServer) -> None:
    bus = await connect(nats_server.url, Retention(max_age=1, max_bytes=0))
    try:
        for n in range(5):
            await bus.publish(subjects.node(f"n{n}", "updated"), Ping(n))
        window = await stream_window(bus.nc)
        assert (window.first_seq, window.last_seq, window.max_age) == (1, 5, 1.0)
        gone = await eventually(
            lambda: stream_window(bus.nc), "the events aged out", within=10, until=lambda w: w.empty
        )
        assert (gone.first_seq, gone.last_seq) == (6, 5)  # the next is 6; none kept
        await bus.publish(subjects.node("n1", "updated"), Ping(6))
        window = await stream_window(bus.nc)
        assert (window.first_seq, window.last_seq) == (6, 6)
    finally:
        await bus.close()


async def test_the_oldest_events_go_once_the_stream_is_full(nats_server: NatsServer) -> None:
    bus = await connect(nats_server.url, Retention(max_age=0, max_bytes=8192))
    try:
        for n in range(200):
            await bus.publish(subjects.node(f"n{n % 7}", "updated"), Ping(n, pad="x" * 100))
        info = await bus.js.stream_info(names.STREAM)
        window = await stream_window(bus.nc)
        assert info.state.bytes <= 8192
        # One unbroken run up to the newest, whatever the subjects: the oldest went first.
        assert window.last_seq == 200 and window.first_seq > 1
        assert info.state.messages == window.last_seq - window.first_seq + 1
        newest = await bus.js.get_last_msg(names.STREAM, subjects.node("n3", "updated"))
        assert msgspec.json.decode(newest.data or b"", type=Ping).n == max(range(3, 200, 7))
    finally:
        await bus.close()


async def test_a_server_without_room_for_the_size_limit_gets_a_stream_that_fits(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A small disk for JetStream (here a 64 MiB store) refuses a stream that sets 1 GiB
    aside: the services still start, with the largest size limit that fits, and say so."""
    config = tmp_path / "nats.conf"
    config.write_text("jetstream { max_file_store: 64MB }\n")
    server = NatsServer(tmp_path / "nats", port=free_port(), config=config)
    await server.start()
    try:
        bus = await connect(server.url, Retention())
        try:
            _, max_bytes, _ = await limits(bus)
        finally:
            await bus.close()
    finally:
        await server.stop()
    assert 4096 <= max_bytes <= 64 * 1000 * 1000 < DEFAULT_MAX_BYTES
    assert f"the {names.STREAM} stream keeps at most {max_bytes}" in caplog.text
