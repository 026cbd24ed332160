"""The keeper's eye on nats-server's log: which lines say a write was refused for want of space,
and that only lines written after it started looking count."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from libs.common.store.full import free_bytes
from libs.runtime.natsdisk import LogTail, has_room, refused_for_space
from tests.needs import tmpfs

REFUSED = (
    b"[12504] 2026/11/26 04:26:31.684376 [ERR] JetStream failed to store a msg on stream "
    b"'$G > KV_nodes': write /data/nats/jetstream/$G/streams/KV_nodes/msgs/1.blk: "
    b"no space left on device\n"
)


def test_the_tail_gives_whole_new_lines_only(tmp_path: Path) -> None:
    log = tmp_path / "nats.log"
    log.write_bytes(b"old line\n")
    tail = LogTail(log)
    assert tail.new_lines() == []
    with log.open("ab") as out:
        out.write(b"first\nhalf of a sec")
    assert tail.new_lines() == [b"first"]
    with log.open("ab") as out:
        out.write(b"ond\n")
    assert tail.new_lines() == [b"half of a second"]


def test_the_tail_starts_over_on_a_replaced_log(tmp_path: Path) -> None:
    log = tmp_path / "nats.log"
    log.write_bytes(b"a long line from before the rotation\n")
    tail = LogTail(log)
    log.write_bytes(b"new\n")
    assert tail.new_lines() == [b"new"]


def test_a_missing_log_is_no_lines(tmp_path: Path) -> None:
    assert LogTail(tmp_path / "absent.log").new_lines() == []


async def test_a_refusal_logged_before_looking_does_not_count(tmp_path: Path) -> None:
    log = tmp_path / "nats.log"
    log.write_bytes(REFUSED)
    waiting = asyncio.ensure_future(refused_for_space(log, tmp_path, poll=0.01))
    with log.open("ab") as out:
        out.write(b"[INF] Server is ready\n")
    done, _ = await asyncio.wait({waiting}, timeout=0.2)
    assert not done  # the old refusal and a harmless line: nothing to restart for
    with log.open("ab") as out:
        out.write(REFUSED)
    refusal = await asyncio.wait_for(waiting, 10)
    assert "KV_nodes" in refusal.line and refusal.line.endswith("no space left on device")


async def test_a_refusal_waits_for_room(tmp_path: Path) -> None:
    log = tmp_path / "nats.log"
    log.touch()
    waiting = asyncio.ensure_future(
        refused_for_space(log, tmp_path, room=1 << 62, poll=0.01)  # more than any disk has
    )
    with log.open("ab") as out:
        out.write(REFUSED)
    done, _ = await asyncio.wait({waiting}, timeout=0.2)
    waiting.cancel()
    assert not done
    with pytest.raises(asyncio.CancelledError):
        await waiting


def test_the_tail_can_start_where_a_restart_began(tmp_path: Path) -> None:
    log = tmp_path / "nats.log"
    log.write_bytes(b"old server\n")
    offset = LogTail.end_of(log)
    with log.open("ab") as out:
        out.write(b"new server starting\n")  # before the watch began, after the restart
    assert LogTail(log, offset).new_lines() == [b"new server starting"]


def test_room_is_tried_not_computed(tmp_path: Path) -> None:
    """Out of inodes, a file system refuses every new file with bytes to spare: statvfs says
    there is room, a try says there is none."""
    with tmpfs(tmp_path / "store", "size=8m,nr_inodes=16") as store:
        assert has_room(store)
        made = 0
        with contextlib.suppress(OSError):
            while True:
                (store / f"f{made}").touch()
                made += 1
        assert free_bytes(store) > 1 << 20
        assert not has_room(store)
        (store / "f0").unlink()
        assert has_room(store)
        assert sorted(p.name for p in store.iterdir() if p.name.startswith(".room")) == []


def test_no_room_for_the_size_asked(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "store", "size=2m") as store:
        assert has_room(store, 1 << 20)
        assert not has_room(store, 4 << 20)
        with contextlib.suppress(OSError):
            (store / "filler").write_bytes(bytes(2 << 20))
        assert not has_room(store, 1 << 20)
