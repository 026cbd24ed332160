"""A node that stops reading loses its transfer slot once it has taken nothing for the stall
limit, however its answer is sent: a Range answer and a `/system` answer of big archives
(Starlette sends those message by message) and a whole file (sendfile). Against a real bootd
with one slot and a 3 s limit ($WOLFPACK_BOOTD_STALL_SECONDS); each cut-off is counted in
`GET /api/v1/serving`."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from typing import Any, Final

import httpx
import msgspec
import pytest

from libs.common import names
from libs.common.models.overlay import BootManifest
from tests.bootd.conftest import (
    Bootd,
    answered,
    boot_node,
    fresh_mac,
    public_blob,
    start_bootd,
)
from tests.stack import RegistryProcess, connected_bus
from tests.stalled_get import StalledGet

ENV_STALL: Final = "WOLFPACK_BOOTD_STALL_SECONDS"
# Long enough that the holder keeps its slot through the 503 check on a slow machine.
STALL: Final = 3.0
BIG: Final = 32 << 20  # well over the socket buffers of both ends


@pytest.fixture(scope="module")
def stalling(registry_process: RegistryProcess) -> Iterator[Bootd]:
    """A real bootd with `--max-transfers 1` and a stall limit of STALL seconds."""
    with start_bootd(
        registry_process, "--max-transfers", "1", env={ENV_STALL: str(STALL)}
    ) as started:
        yield started


@pytest.fixture
async def client(stalling: Bootd) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stalling.url, timeout=30) as http:
        yield http


async def serving(client: httpx.AsyncClient, stalling: Bootd) -> dict[str, Any]:
    answer = await client.get("/api/v1/serving", headers=stalling.auth)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


async def until_free(client: httpx.AsyncClient, stalling: Bootd) -> None:
    """Wait until no transfer runs: well within 10 s past the stall limit."""
    await answered(
        client,
        "/api/v1/serving",
        lambda answer: not answer.json()["admission"]["active"],
        "no transfer running",
        within=STALL + 10,
        headers=stalling.auth,
    )


async def until_stage_failed(client: httpx.AsyncClient, stalling: Bootd, node: str) -> None:
    def failed(answer: httpx.Response) -> bool:
        found = [n for n in answer.json() if n["node"] == node]
        return bool(found) and found[0]["stage"] == "system" and not found[0]["ok"]

    # bootd publishes the stage just after the answer ends.
    answer = await answered(
        client, "/api/v1/status", failed, f"{node}'s system stage failed", headers=stalling.auth
    )
    found = next(n for n in answer.json() if n["node"] == node)
    assert found["error"] == f"cut off: the node took nothing for {STALL:g} s"


@pytest.mark.parametrize("how", ["range", "system", "whole file"])
async def test_a_node_that_stops_reading_is_cut_off_and_frees_its_slot(
    stalling: Bootd, client: httpx.AsyncClient, how: str
) -> None:
    data = os.urandom(BIG)
    async with connected_bus(stalling.nats_url, "stall-test") as bus:
        digest = await public_blob(bus, stalling.store, client, data)
        blob = f"/blobs/sha256/{digest}"
        path, status = blob, b"200"
        headers: tuple[str, ...] = ()
        if how == "range":
            headers, status = ("Range: bytes=0-",), b"206"
        elif how == "system":
            mac = fresh_mac()
            files = await boot_node(bus, stalling.store, f"stall-{mac[-2:]}", mac)
            halves = [data[: BIG // 2], data[BIG // 2 :]]
            systems = [await stalling.store.put_bytes(half) for half in halves]
            boot = await bus.bucket(names.BUCKET_BOOT, BootManifest)
            manifest = msgspec.structs.replace(files.manifest, system_digests=systems)
            await boot.put(manifest.node, manifest)
            path = f"/system/{mac}"
            await answered(
                client,
                path,
                lambda answer: answer.headers.get("content-length") == str(BIG),
                f"{path} of both halves",
                method="HEAD",
            )
    before = await serving(client, stalling)
    holder = await StalledGet.ask(stalling.url, path, *headers)
    try:
        assert holder.head.startswith(b"HTTP/1.1 " + status), holder.head
        assert (await serving(client, stalling))["admission"]["active"] == 1
        assert (await client.get(blob)).status_code == 503  # the one slot is taken
        await until_free(client, stalling)
        # bootd closed the connection: the holder gets what the kernel had queued, then EOF.
        assert await holder.rest() < BIG
    finally:
        holder.close()
    after = await serving(client, stalling)
    assert after["stalls"]["cut_off"] - before["stalls"]["cut_off"] == 1
    assert after["stalls"]["limit_seconds"] == STALL
    if how == "system":  # a node's own route: its timeline says the stage failed, and why
        await until_stage_failed(client, stalling, manifest.node)
    # The freed slot goes to the next node, which reads: it gets the whole blob.
    answer = await client.get(blob)
    assert answer.status_code == 200 and answer.content == data
