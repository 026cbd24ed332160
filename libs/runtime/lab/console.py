"""Output read as it comes, line by line, with the time each line arrived, and waits for a line
that matches a pattern: the virtual machine's serial console, `wolfpack up`'s log."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TextIO

# Terminal control sequences (firmware and iPXE draw with them) and carriage returns.
_CONTROL: Final = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>c78]|\r")
READ_SIZE: Final = 4096


@dataclass(frozen=True)
class Seen:
    """A line that matched: its number, when it arrived (time.monotonic) and the match."""

    index: int
    at: float
    match: re.Match[str]

    @property
    def line(self) -> str:
        return self.match.string


def clean(text: str) -> str:
    return _CONTROL.sub("", text)


class LineLog:
    """Lines fed in as bytes; each kept with its arrival time, optionally copied to a file."""

    def __init__(self, name: str, copy_to: Path | None = None, echo: TextIO | None = None) -> None:
        self.name = name
        self.lines: list[str] = []
        self.times: list[float] = []
        self.closed = False
        self._partial = b""
        self._copy = copy_to.open("a", encoding="utf-8") if copy_to is not None else None
        self._echo = echo
        self._changed = asyncio.Condition()

    async def feed(self, chunk: bytes) -> None:
        now = time.monotonic()
        *complete, self._partial = (self._partial + chunk).split(b"\n")
        for raw in complete:
            line = clean(raw.decode("utf-8", errors="replace"))
            self.lines.append(line)
            self.times.append(now)
            for out in (self._copy, self._echo):
                if out is not None:
                    out.write(line + "\n")
                    out.flush()
        if complete:
            async with self._changed:
                self._changed.notify_all()

    async def pump(self, stream: asyncio.StreamReader) -> None:
        """Read `stream` to its end."""
        try:
            while chunk := await stream.read(READ_SIZE):
                await self.feed(chunk)
        finally:
            if self._partial:
                await self.feed(b"\n")
            self.closed = True
            if self._copy is not None:
                self._copy.close()
            async with self._changed:
                self._changed.notify_all()

    def find(self, pattern: str | re.Pattern[str], since: int = 0) -> Seen | None:
        compiled = re.compile(pattern)
        for index in range(since, len(self.lines)):
            found = compiled.search(self.lines[index])
            if found is not None:
                return Seen(index, self.times[index], found)
        return None

    async def wait_for(self, pattern: str | re.Pattern[str], within: float, since: int = 0) -> Seen:
        """The first line from number `since` on that matches, waiting up to `within` s."""
        compiled = re.compile(pattern)
        start = since

        def check() -> Seen | None:
            nonlocal start
            found = self.find(compiled, start)
            start = len(self.lines)
            return found

        try:
            async with asyncio.timeout(within):
                return await self._wait(check)
        except TimeoutError:
            raise TimeoutError(
                f"{self.name}: no line matching {compiled.pattern!r} within {within:g} s; "
                f"last lines:\n{self.tail()}"
            ) from None

    async def _wait(self, check: Callable[[], Seen | None]) -> Seen:
        async with self._changed:
            while True:
                found = check()
                if found is not None:
                    return found
                if self.closed:
                    raise EOFError(f"{self.name} ended; last lines:\n{self.tail()}")
                await self._changed.wait()

    def tail(self, count: int = 40) -> str:
        return "\n".join(self.lines[-count:])
