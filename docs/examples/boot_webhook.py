#!/usr/bin/env python3
"""Post failed and stalled node boots to a webhook: an example wolfpack integration.

Follows the boot stage events `wolfpack.node.<name>.boot` with a durable JetStream consumer
and POSTs one JSON report per failed stage and per boot quiet for --stall-seconds, with an
Idempotency-Key header. Needs nats-py only. How to run it: docs/examples/README.md.

It keeps no state of its own, so it may be killed at any moment:
- an event is acked only once the webhook answered 2xx (retried with backoff until then), so
  what was not posted is delivered again after a crash;
- the latest stage of a boot in progress is nak'd with a delay that ends at its stall deadline:
  JetStream keeps the timer across restarts, and when the stage comes back, the stream itself
  says whether the node moved on since.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import logging
import os
import signal
import time
import urllib.error
import urllib.request
from typing import Any

import nats
import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError

log = logging.getLogger("boot-webhook")

STREAM = "WOLFPACK"
BOOT_EVENTS = "wolfpack.node.*.boot"
# A boot in progress. After `system` the kernel starts, and the node agent fetches its runtime
# overlay (stage `runtime`) and reports (stage `agent`): the node has booted.
BOOTING = {"tftp", "ipxe", "kernel", "image", "system"}
# bootd's answer while it sends --max-transfers files already: the node waits and asks again.
DEFERRED = "HTTP 503"
# The name of every machine bootd cannot name: its failures count, its stalls cannot be told.
UNKNOWN = "unknown"
# Stages waiting for their stall deadline at once (a booting node holds up to five).
MAX_HELD = 100_000

Stage = dict[str, Any]  # a BootStage event (libs/common/models/boot_stage.py)


def failed(stage: Stage) -> bool:
    # An event leaves out fields at their defaults: `ok` true, `error` empty.
    return not stage.get("ok", True) and stage.get("error") != DEFERRED


def post(url: str, body: dict[str, Any], key: str, timeout: float) -> int:
    """POST `body` as JSON; the answer's HTTP status."""
    headers = {"Content-Type": "application/json", "Idempotency-Key": key}
    request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as err:
        return err.code


class Follower:
    def __init__(self, js: JetStreamContext, options: argparse.Namespace) -> None:
        self.js = js
        self.url: str = options.url
        self.stall: float = options.stall_seconds
        # Each try and each pause between tries stays well inside the ack wait.
        self.patience: float = options.redeliver_seconds / 3

    async def handle(self, msg: Msg) -> None:
        stage: Stage = json.loads(msg.data)
        sequence = msg.metadata.sequence.stream
        if failed(stage):
            await self.deliver(msg, "failed", stage, stage.get("error", ""), sequence)
        elif stage["stage"] in BOOTING and stage["node"] != UNKNOWN:
            latest = await self.still_booting(msg.subject, sequence, stage)
            if latest is not None:
                left = latest["at"] + self.stall - time.time()
                if left > 0:
                    await msg.nak(delay=left)  # JetStream hands it back at the deadline
                    return
                reason = f"no boot stage for {self.stall:g} s after {latest['stage']}"
                await self.deliver(msg, "stalled", latest, reason, sequence)
        await self.acked(msg)

    async def acked(self, msg: Msg) -> None:
        """Ack until the server confirms: an ack lost to a NATS outage would repeat a post."""
        while True:
            try:
                await msg.ack_sync(timeout=self.patience)
                return
            except nats.errors.Error as err:
                log.warning("ack of %s not confirmed (%r); again in 1 s", msg.subject, err)
                await asyncio.sleep(1)

    async def still_booting(self, subject: str, sequence: int, stage: Stage) -> Stage | None:
        """The node's latest stage if its boot has not moved on since `stage` (its agent may
        have fetched the runtime overlay, but has not reported yet); None if it has."""
        while True:
            try:
                later = await self.js.get_msg(STREAM, sequence + 1, subject=subject, next=True)
            except NotFoundError:
                return stage
            stage, sequence = json.loads(later.data or b"{}"), later.seq or sequence + 1
            if stage.get("stage") != "runtime" or failed(stage):
                return None  # the next stage, the agent's report, or a failure of its own

    async def deliver(self, msg: Msg, kind: str, stage: Stage, reason: str, seq: int) -> None:
        """POST until the webhook answers 2xx, pausing longer after each refusal."""
        key = f"{stage['node']}:{seq}:{kind}"  # the event's node and stream sequence
        body = stage | {"kind": kind, "reason": reason, "sequence": seq}
        pause = 0.5
        while True:
            try:
                status = await asyncio.to_thread(post, self.url, body, key, self.patience)
                problem = f"HTTP {status}"
            except (OSError, http.client.HTTPException) as err:
                status, problem = 0, repr(err)
            if 200 <= status < 300:
                log.info("posted %s: %s %s, %s", key, kind, stage["stage"], reason)
                return
            pause = min(pause * 2, self.patience)
            log.warning("webhook did not take %s (%s); again in %g s", key, problem, pause)
            await msg.in_progress()  # still ours: no redelivery meanwhile
            await asyncio.sleep(pause)


async def fell_behind(js: JetStreamContext, durable: str) -> None:
    """Say so if the stream dropped events (its retention: age, size) this follower had not
    read yet: JetStream itself would skip them without a word."""
    read = (await js.consumer_info(STREAM, durable)).delivered.stream_seq or 0
    state = (await js.stream_info(STREAM)).state
    first = state.first_seq or 0
    if read and first > read + 1:
        log.error(
            "fell behind the stream's retention: events %d..%d were dropped before this "
            "follower read them; boots that failed or stalled among them are not reported",
            read + 1,
            first - 1,
        )


async def follow(options: argparse.Namespace, token: str | None) -> None:
    here = asyncio.current_task()
    assert here is not None
    # SIGTERM as Ctrl-C: stop at the next await, and close the connection.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, here.cancel)

    async def said(err: Exception) -> None:  # one line, not nats-py's traceback
        log.warning("NATS: %s", str(err) or repr(err))

    nc = await nats.connect(
        options.nats, token=token, name="boot-webhook", max_reconnect_attempts=-1, error_cb=said
    )
    try:
        js = nc.jetstream()
        config = api.ConsumerConfig(
            durable_name=options.durable,
            filter_subject=BOOT_EVENTS,
            deliver_policy=api.DeliverPolicy.NEW,  # on its first start: from then on
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=options.redeliver_seconds,
            max_ack_pending=MAX_HELD,
        )
        try:
            await js.add_consumer(STREAM, config)  # made, or its settings updated
        except NotFoundError:
            raise SystemExit(
                f"no {STREAM} stream at {options.nats}: is wolfpack running?"
            ) from None
        await fell_behind(js, options.durable)
        events = await js.pull_subscribe_bind(durable=options.durable, stream=STREAM)
        follower = Follower(js, options)
        log.info("following %s as %r, posting to %s", BOOT_EVENTS, options.durable, options.url)
        while True:
            try:
                # One at a time: an event fetched is ours until acked, its retries included.
                for msg in await events.fetch(1, timeout=10):
                    try:
                        await follower.handle(msg)
                    except (ValueError, KeyError, TypeError) as err:
                        log.warning("%s: not a boot stage event (%r), skipped", msg.subject, err)
                        await msg.term()
            except nats.errors.TimeoutError:
                continue  # nothing new
            except nats.errors.Error as err:  # NATS away: the event comes back after the ack wait
                log.warning("NATS: %r", err)
                await asyncio.sleep(1)
    finally:
        await nc.close()


def seconds(text: str) -> float:
    if not float(text) > 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, not {text!r}")
    return float(text)


def parse() -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description="Post failed and stalled boots to a webhook.")
    flag = parser.add_argument
    flag("--url", default=env("BOOT_WEBHOOK_URL"), required=not env("BOOT_WEBHOOK_URL"))
    flag("--nats", default=env("WOLFPACK_NATS", "nats://127.0.0.1:4222"))
    flag("--nats-token-file", default=env("WOLFPACK_NATS_TOKEN_FILE"), help="DATA/nats.token")
    flag("--stall-seconds", type=seconds, default=env("BOOT_WEBHOOK_STALL_SECONDS", "300"))
    flag("--durable", default="boot-webhook", help="one durable consumer per webhook")
    flag("--redeliver-seconds", type=seconds, default="30", help="the consumer's ack wait")
    return parser.parse_args()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    options = parse()
    token = None
    if options.nats_token_file:
        with open(options.nats_token_file) as file:
            token = file.read().strip()
    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(follow(options, token))


if __name__ == "__main__":
    main()
