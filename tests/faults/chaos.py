"""The parts of a fault-injection run: a client that retries until the stack accepts a write
(and a ledger of what it accepted), a killer that SIGKILLs one process of a `wolfpack up` and
waits for its supervisor to bring it back, and a durable follower of image job endings."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
import msgspec
import nats
import nats.errors

from libs.common import names, subjects
from libs.common.models.overlay import BootManifest
from libs.common.nodes.mergepatch import apply_merge_patch
from tests.overlayd.helpers import fresh_render
from tests.stack import UpStack, connected_bus, nats_client
from tests.waiting import eventually

# What a client does when a service is down and says nothing about when to come back.
RETRY_PAUSE: Final = 0.2
RECOVERY_TIMEOUT: Final = 90.0
NATS_PROCESS: Final = "nats-server"
# A refusal that says "not now" (a conflicting write in flight, too busy), not "never".
RETRY_STATUS: Final = frozenset({409, 429})
# Durable consumers by the service that owns them (by name prefix).
CONSUMER_PREFIX: Final = {"overlayd": "overlayd-", "builder": "builder-"}


class Write(msgspec.Struct, frozen=True):
    """One accepted write: a merge patch, a whole body (`replace`), or a delete (None)."""

    kind: str
    name: str
    body: dict[str, Any] | None
    replace: bool = False


@dataclass
class Ledger:
    """Every write the stack accepted (2xx), in order, and what it said when it did not."""

    writes: list[Write] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    grew: asyncio.Event = field(default_factory=asyncio.Event)

    def accepted(self, write: Write) -> None:
        self.writes.append(write)
        self.grew.set()

    async def holds(self, count: int) -> None:
        """Until `count` writes were accepted."""
        while len(self.writes) < count:
            self.grew.clear()
            await self.grew.wait()

    def expected(self) -> dict[tuple[str, str], dict[str, Any] | None]:
        """What the registry must hold for every object written: the writes replayed."""
        state: dict[tuple[str, str], dict[str, Any] | None] = {}
        for w in self.writes:
            key = (w.kind, w.name)
            if w.body is None:
                state[key] = None
            elif w.replace:
                state[key] = dict(w.body)
            else:
                state[key] = apply_merge_patch(state.get(key) or {}, w.body)
        return state

    def exists(self, kind: str, name: str) -> bool:
        return self.expected().get((kind, name)) is not None


def leaves(body: dict[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for key, value in body.items():
        if isinstance(value, dict) and value:
            yield from leaves(value, (*prefix, key))
        else:
            yield (*prefix, key)


def at(doc: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


def present(write: Write, expected: dict[str, Any] | None, found: dict[str, Any] | None) -> bool:
    """The write's effect is in `found`: each value it set is there, unless a later accepted
    write set that value again (then `expected`, the replay of all writes, says which)."""
    if write.body is None or expected is None:
        return (found is None) == (expected is None)
    if found is None:
        return False
    return all(at(found, path) == at(expected, path) for path in leaves(write.body))


class Retrying:
    """An API client that tries a request again until the service takes it: what a script
    driving wolfpack does while a process restarts. Only idempotent requests go through it."""

    def __init__(self, client: httpx.AsyncClient, ledger: Ledger) -> None:
        self.client = client
        self.ledger = ledger

    async def until(self, method: str, url: str, *, ok: tuple[int, ...] = (), **kw: Any) -> Any:
        while True:
            try:
                answer = await self.client.request(method, url, **kw)
            except httpx.TransportError as err:
                self.ledger.refused[type(err).__name__] += 1
                await asyncio.sleep(RETRY_PAUSE)
                continue
            if answer.is_success or answer.status_code in ok:
                return answer
            if answer.status_code < 500 and answer.status_code not in RETRY_STATUS:
                raise AssertionError(f"{method} {url}: {answer.status_code} {answer.text}")
            self.ledger.refused[str(answer.status_code)] += 1
            if answer.status_code >= 500 and answer.status_code != 503:
                self.ledger.server_errors.append(f"{method} {url}: {answer.text[:300]}")
            pause = answer.headers.get("Retry-After")
            await asyncio.sleep(float(pause) if pause else RETRY_PAUSE)


@dataclass
class Kill:
    process: str
    old_pid: int
    new_pid: int
    # Events waiting for the killed process's durable consumers when it died: the restarted
    # process (or, for nats-server, every consumer) handles them again.
    pending_events: int
    recovered_in: float


class Killer:
    def __init__(self, stack: UpStack) -> None:
        self.stack = stack
        self.kills: list[Kill] = []

    def pid(self, process: str) -> int | None:
        try:
            return int((self.stack.data / "run" / f"{process}.pid").read_text())
        except (FileNotFoundError, ValueError):
            return None  # between a death and the restart, or mid-write

    async def kill(self, process: str) -> Kill:
        return (await self.kill_together([process]))[0]

    async def kill_together(self, processes: list[str]) -> list[Kill]:
        """SIGKILL every one of `processes` at once; when each is back and healthy, what it
        took."""
        loop = asyncio.get_running_loop()
        old = {p: self.pid(p) for p in processes}
        for process, pid in old.items():
            assert pid is not None, f"{process} has no pid file: is it running?"
        pending = {p: await pending_events(self.stack.nats_url, p) for p in processes}
        for pid in old.values():
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
        started = loop.time()

        async def back(process: str) -> Kill:
            old_pid = old[process]
            assert old_pid is not None
            new = await self.returned(process, old_pid)
            return Kill(process, old_pid, new, pending[process], loop.time() - started)

        async with asyncio.timeout(RECOVERY_TIMEOUT):
            records = await asyncio.gather(*(back(p) for p in processes))
        self.kills.extend(records)
        return records

    async def returned(self, process: str, old: int) -> int:
        """The pid of `process` once its supervisor started it again in place of `old` and it
        answers; within RECOVERY_TIMEOUT."""
        loop = asyncio.get_running_loop()
        ends = loop.time() + RECOVERY_TIMEOUT
        # The supervisor rewrites the pid file when it starts the process again; no event
        # tells us, so look every 20 ms.
        new = await eventually(
            lambda: self.pid(process),
            f"{process} started again (a new pid, alive)",
            within=RECOVERY_TIMEOUT,
            until=lambda pid: pid is not None and pid != old and _alive(pid),
            every=0.02,
        )
        await self._healthy(process, ends - loop.time())
        return new

    async def _healthy(self, process: str, within: float) -> None:
        if process == NATS_PROCESS:
            await eventually(
                lambda: _nats_answers(self.stack.nats_url),
                "the restarted nats-server answering",
                within=within,
                every=0.02,
            )
            return
        async with httpx.AsyncClient(trust_env=False, timeout=2.0) as client:
            await eventually(
                lambda: client.get(f"{self.stack.url(process)}/healthz"),
                f"the restarted {process} answering /healthz",
                within=within,
                until=lambda answer: answer.is_success,
                every=0.02,
                ignoring=(httpx.TransportError,),
            )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def _nats_answers(url: str) -> bool:
    # One look, no reconnects: a server that is not back yet is an answer, not a wait.
    try:
        async with nats_client(url, allow_reconnect=False, connect_timeout=1) as nc:
            await nc.jetstream().stream_info(names.STREAM)
            return True
    except (OSError, nats.errors.Error, TimeoutError):
        return False


async def pending_events(url: str, process: str) -> int:
    """Events not yet acknowledged by the durable consumers `process` owns (all of them for
    nats-server)."""
    prefix = CONSUMER_PREFIX.get(process, "" if process == NATS_PROCESS else None)
    if prefix is None:
        return 0
    async with nats_client(url, allow_reconnect=False) as nc:
        infos = await nc.jetstream().consumers_info(names.STREAM)
        return sum(
            (i.num_pending or 0) + (i.num_ack_pending or 0)
            for i in infos
            if i.name.startswith(prefix) and not i.name.startswith("test-")
        )


class ImageEnd(msgspec.Struct):
    name: str
    job: str


@dataclass
class JobEnds:
    """Endings (`built`, `failed`, `unchanged`) of image jobs, by job id, read through a
    durable consumer: they are not lost while nats-server is down or restarting."""

    ends: dict[str, str] = field(default_factory=dict)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def of(self, job: str) -> str:
        while job not in self.ends:
            self.arrived.clear()
            await self.arrived.wait()
        return self.ends[job]


@contextlib.asynccontextmanager
async def following_jobs(nats_url: str) -> AsyncIterator[JobEnds]:
    jobs = JobEnds()

    async def on_end(subject: str, event: ImageEnd) -> None:
        jobs.ends[event.job] = subjects.parse(subject).verb
        jobs.arrived.set()

    ends = [subjects.every("image", verb) for verb in ("built", "failed", "unchanged")]
    async with connected_bus(nats_url, "test-faults") as bus:
        await bus.consume(ends, "test-faults-jobs", ImageEnd, on_end)
        yield jobs


def stack_processes() -> list[str]:
    return [*names.SERVICES, NATS_PROCESS]


def blob_path(data: Path, digest: str) -> Path:
    return data / "cas" / "sha256" / digest[:2] / digest


async def converged(up: UpStack, scratch: Path, within: float) -> dict[str, BootManifest]:
    """KV `boot` once it equals a fresh full render of the registry; the difference if it
    never does within `within`."""
    async with connected_bus(up.nats_url, "test-converged") as bus:
        boot = await bus.bucket(names.BUCKET_BOOT, BootManifest)

        async def difference() -> tuple[list[str], dict[str, BootManifest]]:
            """The nodes whose stored manifest is not the fresh one, and what is stored."""
            fresh = await fresh_render(up.nats_url, up.data, up.port_offset, scratch)
            stored = {
                k: msgspec.structs.replace(v, revision=0) for k, v in (await boot.items()).items()
            }
            differ = sorted(
                k for k in stored.keys() | fresh.keys() if stored.get(k) != fresh.get(k)
            )
            return differ, stored

        # overlayd may still be at work (a follow-up wave, a restart's full render).
        _, stored = await eventually(
            difference,
            "KV boot equal to a fresh render (nodes that differ, KV boot)",
            within=within,
            until=lambda found: not found[0],
            every=0.2,
        )
        return stored


async def served_script(client: httpx.AsyncClient, url: str, text: str, within: float) -> str:
    """bootd's iPXE script at `url` once it has `text` in it: bootd follows KV `boot` on its
    own watch, which may trail a manifest the test has just read there."""
    answer = await eventually(
        lambda: client.get(url),
        f"bootd serving {text!r} at {url}",
        within=within,
        until=lambda answer: answer.is_success and text in answer.text,
        every=0.02,  # nothing tells a client that bootd's view moved
    )
    return answer.text
