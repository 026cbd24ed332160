"""libs.runtime.supervisor with real child processes: output, restarts with backoff, stop."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from libs.common.bus.server import free_port
from libs.common.proc.pidwait import process_ended
from libs.runtime.supervisor import Backoff, Child, ChildExit, Supervisor

LOGGER = "wolfpack.test.supervisor"


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie has finished running)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Lines(logging.Handler):
    """Collects re-logged child lines; `seen(text)` completes when one contains `text`."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self._waiters: list[tuple[str, asyncio.Future[logging.LogRecord]]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        for text, future in self._waiters:
            if text in record.getMessage() and not future.done():
                future.set_result(record)

    async def seen(self, text: str) -> logging.LogRecord:
        for record in self.records:
            if text in record.getMessage():
                return record
        future = asyncio.get_running_loop().create_future()
        self._waiters.append((text, future))
        return await future


@pytest.fixture
def lines() -> Iterator[Lines]:
    handler = Lines()
    logger = logging.getLogger(LOGGER)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)


async def test_dying_child_is_restarted_with_growing_backoff(lines: Lines, tmp_path: Path) -> None:
    exits: asyncio.Queue[ChildExit] = asyncio.Queue()
    child = Child(name="quick", argv=python("print('hello from quick'); raise SystemExit(3)"))
    supervisor = Supervisor(
        [child],
        run_dir=tmp_path,
        backoff=Backoff(initial=0.05, maximum=0.2, reset_after=30),
        log=logging.getLogger(LOGGER),
        on_exit=exits.put_nowait,
    )
    await supervisor.start()
    try:
        async with asyncio.timeout(30):
            seen = [await exits.get() for _ in range(5)]
    finally:
        await supervisor.stop()
    assert [e.returncode for e in seen] == [3] * 5
    assert [e.delay for e in seen] == [0.05, 0.1, 0.2, 0.2, 0.2]
    messages = [r.getMessage() for r in lines.records]
    assert "[quick] hello from quick" in messages
    assert any("quick exited with code 3" in m and "restarting in 0.1s" in m for m in messages)
    assert not (tmp_path / "quick.pid").exists()


async def test_backoff_resets_after_a_long_enough_run(lines: Lines) -> None:
    exits: asyncio.Queue[ChildExit] = asyncio.Queue()
    child = Child(name="slow", argv=python("import time; time.sleep(0.4); raise SystemExit(1)"))
    supervisor = Supervisor(
        [child],
        backoff=Backoff(initial=0.05, maximum=1, reset_after=0.2),
        log=logging.getLogger(LOGGER),
        on_exit=exits.put_nowait,
    )
    await supervisor.start()
    try:
        async with asyncio.timeout(30):
            seen = [await exits.get() for _ in range(3)]
    finally:
        await supervisor.stop()
    assert all(e.uptime >= 0.2 for e in seen)
    assert [e.delay for e in seen] == [0.05, 0.05, 0.05]


async def test_stop_terminates_children_and_kills_stubborn_ones(
    lines: Lines, tmp_path: Path
) -> None:
    polite = Child(
        name="polite", argv=python("import time; print('up', flush=True); time.sleep(60)")
    )
    stubborn = Child(
        name="stubborn",
        argv=python(
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('up', flush=True); time.sleep(60)"
        ),
    )
    supervisor = Supervisor(
        [polite, stubborn], run_dir=tmp_path, log=logging.getLogger(LOGGER), stop_timeout=0.5
    )
    await supervisor.start()
    async with asyncio.timeout(30):
        await lines.seen("[polite] up")
        await lines.seen("[stubborn] up")
    pids = {name: int((tmp_path / f"{name}.pid").read_text()) for name in ("polite", "stubborn")}
    assert pids == {"polite": supervisor.pid("polite"), "stubborn": supervisor.pid("stubborn")}
    async with asyncio.timeout(10):
        await supervisor.stop()
    assert not any(alive(pid) for pid in pids.values())
    assert os.listdir(tmp_path) == []  # pid files removed
    messages = [r.getMessage() for r in lines.records]
    assert any("stubborn ignored SIGTERM" in m for m in messages)
    assert not any("exited with code" in m for m in messages)  # stopping is not a crash


async def test_child_lines_keep_their_level(lines: Lines) -> None:
    code = "print('ERROR svc: it broke'); print('  detail line'); print('INFO svc: fine')"
    supervisor = Supervisor(
        [Child(name="svc", argv=python(code + "; import time; time.sleep(60)"))],
        log=logging.getLogger(LOGGER),
    )
    await supervisor.start()
    try:
        async with asyncio.timeout(30):
            broke = await lines.seen("it broke")
            detail = await lines.seen("detail line")
            fine = await lines.seen("svc: fine")
    finally:
        await supervisor.stop()
    assert broke.getMessage() == "[svc] ERROR svc: it broke"
    assert (broke.levelno, detail.levelno, fine.levelno) == (40, 40, 20)


async def test_wait_ready_polls_health_urls(lines: Lines) -> None:
    port = free_port()
    server = (
        "import http.server as h\n"
        "class H(h.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200); self.end_headers(); self.wfile.write(b'ok')\n"
        f"h.HTTPServer(('127.0.0.1', {port}), H).serve_forever()\n"
    )
    child = Child(name="web", argv=python(server), health_url=f"http://127.0.0.1:{port}/healthz")
    supervisor = Supervisor([child], log=logging.getLogger(LOGGER))
    assert supervisor.not_ready() == ["web"]
    await supervisor.start()
    try:
        async with asyncio.timeout(30):
            await supervisor.wait_ready()
    finally:
        await supervisor.stop()
    assert supervisor.not_ready() == []
    assert "all services ready" in [r.getMessage() for r in lines.records]


async def test_children_die_with_a_killed_supervisor(tmp_path: Path) -> None:
    """The supervisor process itself is SIGKILLed: its children must not linger."""
    script = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from libs.runtime.supervisor import Child, Supervisor\n"
        "async def main():\n"
        f"    s = Supervisor([Child(name='c', argv=[sys.executable, '-c', "
        f"'import time; time.sleep(60)'])], run_dir=Path({str(tmp_path)!r}))\n"
        "    await s.start()\n"
        "    print('started', flush=True)\n"
        "    await asyncio.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    parent = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE, cwd=os.getcwd()
    )
    assert parent.stdout is not None
    async with asyncio.timeout(30):
        assert await parent.stdout.readline() == b"started\n"
    child_pid = int((tmp_path / "c.pid").read_text())
    assert alive(child_pid)
    parent.kill()
    await parent.wait()
    async with asyncio.timeout(10):
        await process_ended(child_pid)
