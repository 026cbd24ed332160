"""The compose stack as a user on the host sees it: `up -d` until every container is healthy,
the tokens read from the data volume, the published addresses (any free port on loopback, so
asked again after each `up`), wolfctl's environment and a NATS connection with the token."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import msgspec
import nats
from nats.aio.client import Client as NatsClient
from nats.js.errors import KeyNotFoundError

from libs.common import names
from libs.common.models.image import ImageMeta
from tests.deploy.compose import DATA, Project
from tests.event_recorder import recording


@dataclass
class Stack:
    project: Project
    # Seconds from `up -d` to every container healthy, the first time.
    up_seconds: float

    def token(self) -> str:
        return self.project.read("registry", f"{DATA}/{names.TOKEN_FILE}").strip()

    def nats_token(self) -> str:
        return self.project.read("registry", f"{DATA}/{names.NATS_TOKEN_FILE}").strip()

    def url(self, service: str) -> str:
        return self.project.url(service, names.PORTS[service])

    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.project.port('nats', names.NATS_PORT)}"

    def wolfctl_env(self) -> dict[str, str]:
        """What a user on the host exports for wolfctl: the APIs, the token, and NATS with
        its token (the host is not the URL nats-auth recorded, so it is given in the URL)."""
        return {
            "WOLFPACK_URL": self.url("registry"),
            "WOLFPACK_BUILDER_URL": self.url("builder"),
            "WOLFPACK_OVERLAYD_URL": self.url("overlayd"),
            "WOLFPACK_BOOTD_URL": self.url("bootd"),
            "WOLFPACK_TOKEN": self.token(),
            "WOLFPACK_NATS": self.nats_url().replace("nats://", f"nats://{self.nats_token()}@"),
            "COLUMNS": "200",
        }

    @contextlib.asynccontextmanager
    async def nats(self) -> AsyncIterator[NatsClient]:
        """A NATS client on the host, presenting the token from the data volume."""
        client = await nats.connect(self.nats_url(), token=self.nats_token(), connect_timeout=10)
        try:
            yield client
        finally:
            await client.close()

    async def image(self, name: str) -> ImageMeta | None:
        """Image `name`'s record in KV, as an integrator on the host reads it."""
        async with self.nats() as nc:
            kv = await nc.jetstream().key_value(names.BUCKET_IMAGES)
            try:
                entry = await kv.get(name)
            except KeyNotFoundError:
                return None
            assert entry.value is not None
            return msgspec.json.decode(entry.value, type=ImageMeta)

    def up(self) -> float:
        """`up -d` and wait: seconds until every container is healthy."""
        started = time.monotonic()
        self.project.compose("up", "-d", within=600)
        self.project.wait_healthy()
        return time.monotonic() - started


@contextlib.contextmanager
def started(project: Project) -> Iterator[Stack]:
    """`project` up and healthy; `down -v` at the end, whatever happened."""
    stack = Stack(project, 0.0)
    try:
        stack.up_seconds = stack.up()
        print(f"\ncompose: up -d to every container healthy in {stack.up_seconds:.1f} s")
        with recording(stack.nats_url(), token=stack.nats_token()):
            yield stack
    finally:
        project.down("-v")
