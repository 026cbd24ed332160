"""Transfer slots: at most `total` transfers at once, and at most `per_client` of them for one
client address, so one machine (a flood, a broken firmware asking again and again) cannot
hold every slot while the others wait. A real node fetches one file at a time; the default
leaves room for firmware that asks again before its earlier transfer has timed out.
"""

from __future__ import annotations

import collections
from typing import Final, NamedTuple

from libs.common.settings import TFTP_TRANSFERS, Settings

MAX_TRANSFERS: Final = TFTP_TRANSFERS
PER_CLIENT: Final = Settings().tftp_per_client


class Refusal(NamedTuple):
    reason: str  # for the client's ERROR packet and the log
    news: bool  # the first refusal since this limit was last reached: worth a log line


class Slots:
    def __init__(self, total: int = MAX_TRANSFERS, per_client: int = PER_CLIENT) -> None:
        self.total = total
        self.per_client = per_client
        self._held: collections.Counter[str] = collections.Counter()
        self._refused: set[str] = set()  # at their limit and already told ("" = the server)

    def refusal(self, client: str) -> Refusal | None:
        """Why a new transfer for `client` (an IP address) must wait, or None if it may run."""
        if self._held[client] >= self.per_client:
            reason = f"too many transfers from {client} ({self.per_client} at once); try again"
            return self._refuse(client, reason)
        if self._held.total() >= self.total:
            return self._refuse("", f"server busy ({self.total} transfers); try again")
        return None

    def take(self, client: str) -> None:
        self._held[client] += 1

    def give_back(self, client: str) -> None:
        self._held[client] -= 1
        if self._held[client] <= 0:
            del self._held[client]
        self._refused.discard(client)
        self._refused.discard("")

    def _refuse(self, who: str, reason: str) -> Refusal:
        news = who not in self._refused
        self._refused.add(who)
        return Refusal(reason, news)
