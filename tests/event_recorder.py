"""A core-NATS subscriber that checks every event a test's stack publishes against the
AsyncAPI document (tests/events_schema.py): `wolfpack.>`, the requests on `wolfpack-rpc.>` and
their replies. Every launcher of a whole stack attaches one (`recording`), so a payload that
drifts from the document fails the test that saw it, at teardown, naming subject and error.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import nats
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg

from libs.common import subjects
from tests.events_schema import EventSchema

T = TypeVar("T")
Run = Callable[[Coroutine[Any, Any, Any], float], Any]

EVENTS: Final = subjects.ALL
REQUESTS: Final = "wolfpack-rpc.>"
# Replies go to the requester's inbox: the recorder hears every inbox and keeps what answers
# a request it saw. A reply may be heard before its request: the newest few wait for it.
INBOXES: Final = "_INBOX.>"
EARLY_REPLIES: Final = 256
EARLY_REPLY_BYTES: Final = 64 * 1024
SHOWN: Final = 5
START_WAIT: Final = 60.0
STOP_WAIT: Final = 10.0


@dataclass
class EventRecorder:
    """What it heard: how many messages it checked, by subject kind and verb, and the
    problems found. `record` and `record_reply` are the checks; `verdict` fails on any."""

    schema: EventSchema
    checked: collections.Counter[str] = field(default_factory=collections.Counter)
    problems: list[tuple[str, str]] = field(default_factory=list)
    _asked: dict[str, str] = field(default_factory=dict)  # reply subject → request subject
    _early: collections.OrderedDict[str, bytes] = field(default_factory=collections.OrderedDict)
    _nc: Client | None = None
    # The connection's last error: what `recording` names if the first connect never succeeds.
    last_error: Exception | None = None

    def record(self, subject: str, payload: bytes, reply: str = "") -> None:
        self.checked[_family(subject)] += 1
        problem = self.schema.problem(subject, payload)
        if problem is not None:
            self.problems.append((subject, problem))
        if reply and self.schema.answers(subject):
            early = self._early.pop(reply, None)
            if early is None:
                self._asked[reply] = subject
            else:
                self.record_reply(subject, early)

    def record_reply(self, request_subject: str, payload: bytes) -> None:
        self.checked[f"{_family(request_subject)} (reply)"] += 1
        problem = self.schema.reply_problem(request_subject, payload)
        if problem is not None:
            self.problems.append((f"reply to {request_subject}", problem))

    def _heard_inbox(self, subject: str, payload: bytes) -> None:
        asked = self._asked.pop(subject, None)
        if asked is not None:
            self.record_reply(asked, payload)
        elif payload and len(payload) <= EARLY_REPLY_BYTES:
            self._early[subject] = payload
            while len(self._early) > EARLY_REPLIES:
                self._early.popitem(last=False)

    @property
    def total(self) -> int:
        return sum(self.checked.values())

    def summary(self) -> str:
        by = ", ".join(f"{family} {n}" for family, n in sorted(self.checked.items()))
        return f"{self.total} checked against the AsyncAPI document ({by or 'none'})"

    def verdict(self) -> None:
        """AssertionError naming the first few messages that did not fit, if any did."""
        if not self.problems:
            return
        shown = "\n".join(f"  {subject}: {problem}" for subject, problem in self.problems[:SHOWN])
        more = len(self.problems) - SHOWN
        raise AssertionError(
            f"{len(self.problems)} of {self.total} NATS messages do not fit the AsyncAPI document"
            f"{f' (first {SHOWN} shown)' if more > 0 else ''}:\n{shown}"
        )

    async def start(self, url: str, token: str | None = None) -> None:
        """Subscribe on the NATS at `url`, following it through restarts until `stop`."""
        options: dict[str, Any] = {"token": token} if token else {}
        self._nc = await nats.connect(
            url,
            name="test-event-recorder",
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.2,
            drain_timeout=5,
            # The tests stop and kill NATS on purpose: a lost connection is no news here.
            error_cb=self._on_error,
            **options,
        )
        await self._nc.subscribe(EVENTS, cb=self._on_message)
        await self._nc.subscribe(REQUESTS, cb=self._on_message)
        await self._nc.subscribe(INBOXES, cb=self._on_inbox)
        await self._nc.flush()

    async def stop(self) -> None:
        """What was published before this call is heard (if NATS still answers), then close."""
        nc, self._nc = self._nc, None
        if nc is None:
            return
        with contextlib.suppress(nats.errors.Error, TimeoutError):
            await nc.flush(timeout=2)
            # Until every callback has taken what arrived.
            await nc.drain()
        await nc.close()

    async def _on_error(self, error: Exception) -> None:
        self.last_error = error

    async def _on_message(self, msg: Msg) -> None:
        self.record(msg.subject, msg.data, msg.reply)

    async def _on_inbox(self, msg: Msg) -> None:
        if not msg.headers or "Status" not in msg.headers:  # a "no responders" notice
            self._heard_inbox(msg.subject, msg.data)


def _family(subject: str) -> str:
    """`wolfpack.node.n1.boot` → `node.boot`; a request subject as it is."""
    if subject.startswith(subjects.PREFIX + "."):
        with contextlib.suppress(ValueError):
            parsed = subjects.parse(subject)
            return f"{parsed.kind}.{parsed.verb}"
    return subject


async def _cancel_the_rest() -> None:
    rest = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in rest:
        task.cancel()
    await asyncio.gather(*rest, return_exceptions=True)


@contextlib.contextmanager
def _loop_thread() -> Iterator[Run]:
    """An event loop on a thread of its own, for a recorder under a synchronous launcher:
    the test's own loop may not run yet, or be blocked starting the stack."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="event recorder", daemon=True)
    thread.start()

    def run(coro: Coroutine[Any, Any, T], within: float) -> T:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(within)

    try:
        yield run
    finally:
        # A start that timed out may still be trying: its tasks end before the loop does.
        with contextlib.suppress(Exception):
            run(_cancel_the_rest(), STOP_WAIT)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(STOP_WAIT)
        loop.close()


@contextlib.contextmanager
def recording(
    url: str, token: str | None = None, run: Run | None = None, within: float = START_WAIT
) -> Iterator[EventRecorder]:
    """An EventRecorder on the NATS at `url` for the body's length (on `run`'s loop: the
    lab's, inside its namespace; else one of its own). Leaving without an error, it fails with
    the messages that did not fit; with an error, that error is the one reported."""
    with contextlib.ExitStack() as stack:
        if run is None:
            run = stack.enter_context(_loop_thread())
        recorder = EventRecorder(EventSchema.generated())
        try:
            run(recorder.start(url, token), within)
        except TimeoutError:
            raise RuntimeError(
                f"the event recorder could not subscribe on {url} within {within:g} s "
                f"(last error: {recorder.last_error!r})"
            ) from None
        try:
            yield recorder
        finally:
            run(recorder.stop(), STOP_WAIT + 5)
            print(f"\nevent recorder: {recorder.summary()}")
    recorder.verdict()
