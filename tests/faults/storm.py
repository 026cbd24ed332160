"""A storm of node edits and image jobs against a `wolfpack up`, retried until accepted, with
a ledger of what was accepted: what the fault tests run while they kill things."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, Final

import httpx
import pytest

from tests.faults.chaos import JobEnds, Ledger, Retrying, Write, present
from tests.stack import UpStack

API: Final = "/api/v1"
NODES: Final = 24
NEW_NODES: Final = 6
KILLS_EACH: Final = 2
# Then this many rounds of two processes killed at the same instant.
PAIRS: Final = 3
EDITORS: Final = 3
IMAGES: Final = ("img-a", "img-b")
CONVERGE_WITHIN: Final = 120.0
# An accepted job must end this soon after it was accepted, builder restarts included.
JOB_WITHIN: Final = 120.0


def mac(number: int) -> str:
    return f"52:54:00:fa:{number // 256:02x}:{number % 256:02x}"


def node_body(number: int) -> dict[str, Any]:
    return {
        "profiles": ["default"],
        "network_devices": {
            "default": {"hwaddr": mac(number), "ipaddr": f"10.9.{number // 250}.{number % 250 + 1}"}
        },
    }


class Storm:
    """Node edits and image jobs, retried until accepted, while `running`."""

    def __init__(
        self, up: UpStack, http: httpx.AsyncClient, jobs: JobEnds, rng: random.Random
    ) -> None:
        self.up = up
        self.ledger = Ledger()
        self.api = Retrying(http, self.ledger)
        self.jobs = jobs
        self.rng = rng
        self.running = True
        self.accepted_jobs: dict[str, str] = {}  # job id → image name
        self.last_source: dict[str, str] = {}
        self.job_endings: dict[str, str] = {}

    def url(self, service: str, path: str) -> str:
        return f"{self.up.url(service)}{API}{path}"

    async def put_node(self, number: int) -> None:
        name, body = f"n{number:03d}", node_body(number)
        await self.api.until("PUT", self.url("registry", f"/nodes/{name}"), json=body)
        self.ledger.accepted(Write("nodes", name, body, replace=True))

    async def patch(self, kind: str, name: str, patch: dict[str, Any]) -> None:
        await self.api.until("PATCH", self.url("registry", f"/{kind}/{name}"), json=patch)
        self.ledger.accepted(Write(kind, name, patch))

    async def delete_node(self, name: str) -> None:
        # 404: an earlier try was stored, only its answer was lost.
        await self.api.until("DELETE", self.url("registry", f"/nodes/{name}"), ok=(404,))
        self.ledger.accepted(Write("nodes", name, None))

    def edit(self, serial: int) -> dict[str, Any]:
        match self.rng.randrange(5):
            case 0:
                return {
                    "network_devices": {
                        "default": {"ipaddr": f"10.8.{serial % 250}.{serial // 250 % 250 + 1}"}
                    }
                }
            case 1:
                return {"comment": f"edit {serial}"}
            case 2:
                return {"kernel": {"args": ["quiet", f"edit={serial}"]}}
            case 3:
                return {"image": self.rng.choice(IMAGES)}
            case _:
                return {"tags": {"edit": str(serial)}}

    async def editor(self, mine: list[int]) -> None:
        serial = mine[0] * 100_000
        while self.running:
            serial += 1
            number = self.rng.choice(mine)
            name = f"n{number:03d}"
            if not self.ledger.exists("nodes", name):
                await self.put_node(number)
            elif self.rng.random() < 0.03:
                await self.delete_node(name)
            else:
                await self.patch("nodes", name, self.edit(serial))

    async def profile_editor(self) -> None:
        serial = 0
        while self.running:
            serial += 1
            await self.patch("profiles", "default", {"tags": {"profile-edit": str(serial)}})
            await asyncio.sleep(self.rng.uniform(0.5, 1.5))  # now and then, not flat out

    async def import_image(self, name: str, source: Path) -> None:
        body = {"name": name, "source": str(source)}
        while True:
            answer = await self.api.until(
                "POST", self.url("builder", "/images"), json=body, ok=(409,)
            )
            if answer.status_code == 202:
                break
            # 409: a job of this image is still running; wait for its end and try again.
            running = await self.api.until("GET", self.url("builder", f"/images/{name}/job"))
            await self.jobs.of(running.json()["id"])
        job = answer.json()["id"]
        self.accepted_jobs[job] = name
        self.last_source[name] = str(source)
        try:
            async with asyncio.timeout(JOB_WITHIN):
                self.job_endings[job] = await self.jobs.of(job)
        except TimeoutError:
            pytest.fail(f"job {job} ({name} from {source}) was accepted but never ended")

    async def imager(self, sources: list[Path]) -> None:
        generation = 2
        while self.running:
            name = self.rng.choice(IMAGES)
            await self.import_image(name, sources[generation % len(sources)])
            generation += 1

    async def populate(self, sources: list[Path]) -> None:
        """The images and nodes the storm edits: NODES nodes on the default profile."""
        for name, source in zip(IMAGES, sources, strict=False):
            await self.import_image(name, source)
        await self.patch("profiles", "default", {"image": IMAGES[0]})
        for number in range(NODES):
            await self.put_node(number)

    def workers(self, sources: list[Path]) -> list[Coroutine[Any, Any, None]]:
        """EDITORS node editors (creating and deleting nodes too), a profile editor and an
        importer; they run until `running` is False."""
        numbers = list(range(NODES + NEW_NODES))
        shares = [numbers[i::EDITORS] for i in range(EDITORS)]
        found: list[Coroutine[Any, Any, None]] = [self.editor(share) for share in shares]
        return [*found, self.profile_editor(), self.imager(sources)]

    async def missing_writes(self) -> list[Write]:
        """Accepted writes whose values are not in the registry (nor superseded by a later
        accepted write): what a crash lost."""
        expected = self.ledger.expected()
        found: dict[tuple[str, str], dict[str, Any] | None] = {}
        for kind, name in expected:
            answer = await self.api.until("GET", self.url("registry", f"/{kind}/{name}"), ok=(404,))
            found[(kind, name)] = answer.json() if answer.status_code == 200 else None
        return [
            w
            for w in self.ledger.writes
            if not present(w, expected[(w.kind, w.name)], found[(w.kind, w.name)])
        ]
