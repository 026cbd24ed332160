"""An import the API accepted survives its builder: killed mid-job (SIGKILL), the builder is
started again and runs the job again, under the same id, to its end — KV, the image blob and
wolfctl's progress follow it. It survives NATS too: a job whose KV write meets a NATS outage
is queued again and ends `built` once NATS is back, and a request NATS did not confirm is
kept (with its credentials) and runs. A request delivered twice builds once; an older
request a later one replaced is not run at all."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
from nats.js.api import Header

from libs.common import names, subjects
from libs.common.bus.server import NatsServer
from libs.common.models.image import ImageRequested, ImportRequest
from services.builder.bus import REQUESTED_DURABLE
from tests.builder.helpers import (
    Builder,
    blob,
    builder_running,
    busybox_rootfs,
    launch_builder,
    read_kv,
    tarball,
    unpacked_image,
    watching,
    wolfctl,
)
from tests.builder.vnfs.helpers import describe
from tests.stack import connected_bus, nats_client, run_service, stop_process, wait_healthy
from tests.waiting import eventually

NAME = "durable"
# Incompressible data: the job is still compressing when the test kills the builder.
PAYLOAD_MIB = 24


def slow_archive(folder: Path, mib: int = PAYLOAD_MIB) -> tuple[Path, Path]:
    """A busybox tree with `mib` MiB of incompressible data, and its tarball."""
    tree = busybox_rootfs(folder / "tree")
    (tree / "srv").mkdir()
    for number in range(mib):
        (tree / "srv" / f"blob-{number:02d}").write_bytes(os.urandom(1 << 20))
    return tree, tarball(tree, folder / "slow.tar.gz")


def relaunch(old: Builder) -> Builder:
    """The builder started again on the same DATA and port (where wolfctl looks for it)."""
    port = int(old.url.rsplit(":", 1)[1])
    offset = str(port - names.PORTS["builder"])
    process, _, log = run_service("builder", old.data, old.nats_url, "--port-offset", offset)
    wait_healthy(old.url, process, log)
    return Builder(old.url, old.token, old.nats_url, old.data, process, log)


def staging(data: Path) -> set[str]:
    return {p.name for p in (data / "images" / ".staging").iterdir()}


async def acknowledged(nats_url: str, seq: int) -> None:
    """Until the builder's request consumer has acknowledged every request up to `seq`."""
    async with nats_client(nats_url) as nc:
        js = nc.jetstream()
        # No event says "acknowledged": the consumer's ack floor is the condition.
        await eventually(
            lambda: js.consumer_info(names.STREAM, REQUESTED_DURABLE),
            f"the builder's requests acknowledged up to {seq}",
            within=60,
            until=lambda info: (
                info.ack_floor is not None and (info.ack_floor.stream_seq or 0) >= seq
            ),
        )


@contextlib.contextmanager
def paused(server: NatsServer) -> Iterator[None]:
    """nats-server stopped (SIGSTOP) until the block ends: connections stay open, nothing is
    answered — a broker hung, or too slow to answer in time."""
    assert server.pid is not None
    os.kill(server.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.pid, signal.SIGCONT)


async def job_when(
    api: httpx.AsyncClient, name: str, ready: Any, within: float = 60.0
) -> dict[str, Any]:
    """The image's job (GET …/job) once `ready` says yes of it. Polled: NATS is stopped, so
    no event can say when."""
    answer = await eventually(
        lambda: api.get(f"/images/{name}/job"),
        f"the job of {name} as wanted",
        within=within,
        until=lambda r: r.status_code == 200 and ready(r.json()),
        every=0.1,
    )
    return dict(answer.json())


async def request_seq(nats_url: str, name: str) -> int:
    """The stream sequence of the last request for image `name`."""
    async with nats_client(nats_url) as nc:
        found = await nc.jetstream().get_last_msg(names.STREAM, subjects.image(name, "requested"))
        return found.seq or 0


async def test_a_builder_killed_mid_import_runs_the_job_again_to_its_end(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    tree, archive = await asyncio.to_thread(slow_archive, tmp_path)
    data = tmp_path / "data"
    builder: Builder = await asyncio.to_thread(launch_builder, data, nats_server.url)
    try:
        async with watching(nats_server.url) as events:
            follower = asyncio.create_task(wolfctl(builder, "image", "import", str(archive), NAME))
            _, requested = await events.wait(NAME, ("requested",))
            job = requested["job"]
            await events.wait(NAME, ("progress",), job, where=lambda p: p.phase == "compress")
            builder.process.send_signal(signal.SIGKILL)
            await asyncio.to_thread(builder.process.wait)
            stale = staging(data)
            assert stale, "the kill left no staging folder: the job had ended already"
            assert not events.of(NAME, "built", job) and not events.of(NAME, "failed", job)
            assert await read_kv(nats_server.url, NAME) is None

            builder = await asyncio.to_thread(relaunch, builder)
            assert not stale & staging(data)  # removed at start
            built = await events.end_of(NAME, job)
            assert type(built).__name__ == "ImageBuilt", built
            done = await follower  # wolfctl followed the job across the restart
            assert done.returncode == 0, done
            assert f"image {NAME} built" in done.stdout

            async with builder.client() as api:
                current = (await api.get(f"/images/{NAME}/job")).json()
            assert current["id"] == job and current["state"] == "built"
            meta = await read_kv(nats_server.url, NAME)
            assert meta is not None and meta.image_digest == built.image_digest
            image = blob(data, meta.image_digest).read_bytes()
            assert hashlib.sha256(image).hexdigest() == meta.image_digest
            assert blob(data, meta.kernel_digest).read_bytes() == b"not really a kernel\n"
            # The image is the whole archive (less /boot, which nodes get as the kernel).
            unpacked = await asyncio.to_thread(
                unpacked_image, data, meta.image_digest, tmp_path / "u"
            )
            got, want = await asyncio.gather(
                asyncio.to_thread(describe, unpacked),
                asyncio.to_thread(describe, tree, frozenset({"boot"})),
            )
            assert got == want
            assert staging(data) == set()
    finally:
        await asyncio.to_thread(stop_process, builder.process)


async def test_a_request_delivered_twice_builds_once(
    nats_server: NatsServer, tmp_path: Path, busybox_tarball: Path
) -> None:
    builder: Builder = await asyncio.to_thread(launch_builder, tmp_path / "data", nats_server.url)
    name, job = "twice", "d0ub1ed0ub1e"
    asked = ImportRequest(name=name, source=str(busybox_tarball))
    request = ImageRequested(name=name, job=job, kind="import", source=asked.source, request=asked)
    payload, subject = msgspec.json.encode(request), subjects.image(name, "requested")
    async with nats_client(nats_server.url) as nc:
        async with watching(nats_server.url) as events:
            js = nc.jetstream()
            headers = {Header.MSG_ID.value: job}
            first = await js.publish(subject, payload, headers=headers)
            retried = await js.publish(subject, payload, headers=headers)
            assert retried.duplicate and retried.seq == first.seq  # the stream kept one
            # Past de-duplication (a copy published again much later): a second delivery.
            copy = await js.publish(subject, payload)
            built = await events.end_of(name, job)
            await acknowledged(nats_server.url, copy.seq)
            assert len(events.of(name, "built", job)) == 1 and not events.of(name, "failed")
            meta = await read_kv(nats_server.url, name)
            assert meta is not None and meta.revision == built.revision  # KV written once
        await asyncio.to_thread(stop_process, builder.process)


async def test_a_request_a_later_one_replaced_is_not_run(
    nats_server: NatsServer, tmp_path: Path, busybox_tarball: Path
) -> None:
    name = "replaced"
    old_job, new_job = "01d01d01d01d", "0e10e10e10e1"
    builder: Builder | None = None
    try:
        async with (
            connected_bus(nats_server.url, "test-requests") as bus,  # makes the stream
            watching(nats_server.url) as events,
        ):
            # What a restart can leave: a request still pending (of a builder killed before it
            # ran) and a newer one for the same image, both there when the builder starts.
            for job, source in ((old_job, "/no/such/old.tar"), (new_job, str(busybox_tarball))):
                asked = ImportRequest(name=name, source=source)
                request = ImageRequested(
                    name=name, job=job, kind="import", source=source, request=asked
                )
                await bus.publish(subjects.image(name, "requested"), request, msg_id=job)
            builder = await asyncio.to_thread(launch_builder, tmp_path / "data", nats_server.url)
            old = await events.end_of(name, old_job)
            assert f"a later request for image 'replaced' (job {new_job})" in old.reason
            new = await events.end_of(name, new_job)
            assert type(new).__name__ == "ImageBuilt", new
            meta = await read_kv(nats_server.url, name)
            assert meta is not None and meta.source == str(busybox_tarball)
    finally:
        if builder is not None:
            await asyncio.to_thread(stop_process, builder.process)


async def test_registry_credentials_never_go_on_the_stream(
    nats_server: NatsServer, tmp_path: Path, busybox_tarball: Path
) -> None:
    data = tmp_path / "data"
    async with builder_running(data, nats_server.url) as builder:
        name, secret = "private", "wolf:s3cret-pass"
        async with watching(nats_server.url) as events, builder.client() as api:
            r = await api.post("/images", json={"name": name, "source": str(busybox_tarball),
                                                "creds": secret})  # fmt: skip
            assert r.status_code == 202, r.text
            job = r.json()["id"]
            built = await events.end_of(name, job)
            assert type(built).__name__ == "ImageBuilt", built
            _, requested = await events.wait(name, ("requested",))
            assert requested["creds"] is True and requested["request"]["creds"] is None
            assert all(secret not in str(payload) for _, _, payload in events.events)
            # Kept on the builder's disk until the request is done, then with the image only.
            await acknowledged(nats_server.url, await request_seq(nats_server.url, name))
            assert list((data / "images" / ".requests").iterdir()) == []
            assert (data / "images" / name / "creds").read_text().strip() == secret


async def test_a_kv_write_that_meets_a_nats_outage_ends_built_once_nats_is_back(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    name = "outage"
    _, archive = await asyncio.to_thread(slow_archive, tmp_path, 12)
    async with builder_running(tmp_path / "data", nats_server.url) as builder:
        async with watching(nats_server.url) as events, builder.client() as api:
            r = await api.post("/images", json={"name": name, "source": str(archive)})
            assert r.status_code == 202, r.text
            job = r.json()["id"]
            await events.wait(name, ("progress",), job, where=lambda p: p.phase == "compress")
            with paused(nats_server):
                # The job goes on without NATS until it writes KV, which times out.
                waiting = await job_when(api, name, lambda j: j["state"] == "queued")
                assert waiting["id"] == job and "NATS was unavailable" in waiting["reason"]
            built = await events.end_of(name, job)
            assert type(built).__name__ == "ImageBuilt", built
            # The write whose answer the pause swallowed may have been stored all the same:
            # then its event came (the relay) while the builder still waits to run the job
            # again, and the job, run again, builds the same image once more.
            current = await job_when(api, name, lambda j: j["state"] == "built")
            assert current["id"] == job and current["reason"] is None
            meta = await read_kv(nats_server.url, name)
            assert meta is not None

            def stored() -> Any:
                found = events.of(name, "built", job=job)
                return next((e for e in found if e.revision == meta.revision), None)

            built = await eventually(stored, "the built event of the stored image", within=10)
            assert not events.of(name, "failed")
        assert meta.image_digest == built.image_digest
        image = blob(builder.data, meta.image_digest).read_bytes()
        assert hashlib.sha256(image).hexdigest() == meta.image_digest
        await eventually(
            lambda: staging(builder.data) == set() or None, "staging emptied", within=10
        )


async def test_a_request_nats_did_not_confirm_is_kept_and_runs(
    nats_server: NatsServer, tmp_path: Path, busybox_tarball: Path
) -> None:
    data = tmp_path / "data"
    async with builder_running(data, nats_server.url) as builder:
        name, secret = "unconfirmed", "wolf:s3cret-pass"
        body = {"name": name, "source": str(busybox_tarball), "creds": secret}
        async with watching(nats_server.url) as events, builder.client() as api:
            with paused(nats_server):
                # Stored or not, nobody knows: the job stays, with its credentials.
                r = await api.post("/images", json=body)
                assert r.status_code == 202, r.text
                accepted = r.json()
                assert accepted["state"] == "queued"
                assert "NATS did not confirm" in accepted["reason"]
                job = accepted["id"]
                assert (data / "images" / ".requests" / f"{job}.creds").exists()
                busy = await api.post("/images", json=body)  # still the image's job
                assert busy.status_code == 409 and job in busy.json()["error"], busy.text
            built = await events.end_of(name, job)
            assert type(built).__name__ == "ImageBuilt", built
            current = (await api.get(f"/images/{name}/job")).json()
            assert current["id"] == job and current["state"] == "built"
            await acknowledged(nats_server.url, await request_seq(nats_server.url, name))
        assert list((data / "images" / ".requests").iterdir()) == []
        assert (data / "images" / name / "creds").read_text().strip() == secret


async def test_a_request_nats_certainly_refused_leaves_nothing_behind(
    nats_server: NatsServer, tmp_path: Path, busybox_tarball: Path
) -> None:
    data = tmp_path / "data"
    async with builder_running(data, nats_server.url) as builder:
        name = "refused"
        # No stream to store requests in: NATS answers "no responders" at once.
        async with nats_client(nats_server.url) as nc:
            await nc.jetstream().delete_stream(names.STREAM)
        async with builder.client() as api:
            body = {"name": name, "source": str(busybox_tarball), "creds": "wolf:pw"}
            r = await api.post("/images", json=body)
            assert r.status_code == 503, r.text
            assert "NATS" in r.json()["error"] and "try again" in r.json()["error"]
            assert (await api.get(f"/images/{name}/job")).status_code == 404
        assert list((data / "images" / ".requests").iterdir()) == []
