"""The node agent (/warewulf/wwclient) as a process of its own session, on a root of its own
(WW_ROOT), with its log lines in a queue to wait on."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
from pathlib import Path
from typing import Final

from tests.overlayd.overlays.helpers import script

AGENT: Final = script("wwclient", "warewulf/wwclient")
WAIT: Final = 20.0  # seconds: generous; every wait ends as soon as its line comes


class Agent:
    """The agent as a process of its own session; its log lines in a queue."""

    def __init__(
        self, root: Path, shell: list[str], path: str | None = None, agent: Path = AGENT
    ) -> None:
        env = {**os.environ, "WW_ROOT": str(root)}
        if path is not None:
            env["PATH"] = path
        self.process = subprocess.Popen(
            [*shell, str(agent)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)
            self.lines.put(line)

    def wait_for_line(self, text: str) -> str:
        while True:
            try:
                line = self.lines.get(timeout=WAIT)
            except queue.Empty:
                raise AssertionError(f"no log line with {text!r}; log: {self.log}") from None
            if text in line:
                return line

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # the agent's own session and its sleep
        self.process.wait(timeout=WAIT)
