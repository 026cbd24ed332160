"""The tokens a running service accepts, following `wolfpack token rotate` without a restart.

A request's check stats DATA/api.token and DATA/api.token.previous (about a microsecond each)
and re-reads them only when one changed: rotation replaces the files, so the inode changes
even when the modification time does not.
"""

from __future__ import annotations

import datetime
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from libs.common import names
from libs.common.errors import Unauthorized, WolfpackError
from libs.common.security.api_token import ensure_token, read_token, token_path, tokens_equal
from libs.common.security.token_rotation import PreviousToken, previous_path, read_previous

Stamp = tuple[int, int, int, int] | None


class Tokens(Protocol):
    def check(self, given: str) -> None:
        """Return if `given` is accepted; raise Unauthorized saying why not."""


class FixedToken:
    """One token for the process's life (tests, and callers that hold a token in memory)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def check(self, given: str) -> None:
        if not tokens_equal(given, self.token):
            raise Unauthorized("wrong token")


def _stamp(path: Path) -> Stamp:
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    return (found.st_dev, found.st_ino, found.st_mtime_ns, found.st_size)


class TokenFile:
    """DATA/api.token and the rotated-out tokens still in their grace period."""

    def __init__(self, data_dir: Path, clock: Callable[[], float] = time.time) -> None:
        self.data_dir = Path(data_dir)
        self._clock = clock
        self._paths = (token_path(self.data_dir), previous_path(self.data_dir))
        self._stamps: tuple[Stamp, Stamp] | None = None
        self._current: str | None = None
        self._previous: list[PreviousToken] = []

    @classmethod
    def ensure(cls, data_dir: Path) -> TokenFile:
        """The token file of `data_dir`, creating the token first if there is none."""
        ensure_token(data_dir)
        return cls(data_dir)

    def _refresh(self) -> None:
        stamps = (_stamp(self._paths[0]), _stamp(self._paths[1]))
        if stamps == self._stamps:
            return
        try:
            self._current = read_token(self.data_dir)
        except WolfpackError:  # an empty file: no token to accept
            self._current = None
        self._previous = read_previous(self.data_dir)
        self._stamps = stamps

    def current(self) -> str | None:
        """The token to send (a service calling another one's API)."""
        self._refresh()
        return self._current

    def check(self, given: str) -> None:
        self._refresh()
        now = self._clock()
        # Every stored token is compared, so the time taken says nothing about which matched.
        current = self._current is not None and tokens_equal(given, self._current)
        matched = [p for p in self._previous if tokens_equal(given, p.token)]
        if current or any(p.expires > now for p in matched):
            return
        if self._current is None:
            raise Unauthorized(
                f"the server has no API token: DATA/{names.TOKEN_FILE} is missing or empty "
                "(`wolfpack token rotate` writes a new one)"
            )
        if matched:
            ended = max(p.expires for p in matched)
            at = datetime.datetime.fromtimestamp(ended).isoformat(timespec="seconds")
            raise Unauthorized(
                f"this token was rotated out and has been refused since {at}; "
                f"use the new one in DATA/{names.TOKEN_FILE}"
            )
        raise Unauthorized("wrong token")
