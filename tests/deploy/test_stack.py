"""The compose stack driven from the host, as a site drives it: every container healthy, the
tokens from the data volume, profiles and nodes through the registry API and wolfctl, overlays
rendered into each node's boot manifest, and a NATS subscriber on the host following it all."""

from __future__ import annotations

import asyncio
import json

import httpx
import msgspec
from nats.aio.msg import Msg

from libs.common import names, subjects
from libs.common.models.overlay import BootManifest
from tests.cli import run_cli_async
from tests.deploy.compose import RUNNING
from tests.deploy.stack import Stack
from tests.waiting import eventually


def test_every_container_is_healthy_and_nats_auth_ran_once(stack: Stack) -> None:
    project = stack.project
    assert {name: project.health(name) for name in RUNNING} == dict.fromkeys(RUNNING, "healthy")
    state = project.inspect("nats-auth")["State"]
    assert isinstance(state, dict) and state["ExitCode"] == 0, project.logs("nats-auth")
    # The goal for a stack whose image is built (issue 12): every service healthy in 30 s.
    print(f"up -d to every container healthy: {stack.up_seconds:.1f} s")
    assert stack.up_seconds < 120


async def wolfctl(stack: Stack, *args: str) -> str:
    done = await run_cli_async("wolfctl", *args, env=stack.wolfctl_env(), within=300)
    assert done.returncode == 0, f"wolfctl {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


async def manifest(stack: Stack, node: str) -> BootManifest | None:
    async with stack.nats() as nc:
        kv = await nc.jetstream().key_value(names.BUCKET_BOOT)
        try:
            entry = await kv.get(node)
        except Exception:  # not rendered yet
            return None
        assert entry.value is not None
        return msgspec.json.decode(entry.value, type=BootManifest)


async def test_nodes_from_the_api_and_wolfctl_are_rendered_and_their_events_seen(
    stack: Stack,
) -> None:
    seen: asyncio.Queue[str] = asyncio.Queue()

    async def note(msg: Msg) -> None:
        await seen.put(msg.subject)

    async with stack.nats() as nc:
        await nc.subscribe(subjects.ALL, cb=note)
        await nc.flush()
        headers = {"Authorization": f"Bearer {stack.token()}"}
        async with httpx.AsyncClient(
            base_url=stack.url("registry") + names.API_PREFIX, headers=headers, timeout=30
        ) as api:
            made = await api.put("/profiles/racks", json={"comment": "from the API"})
            assert made.status_code == 201, made.text
            made = await api.put("/nodes/api01", json={"profiles": ["default", "racks"]})
            assert made.status_code == 201, made.text
        await wolfctl(stack, "profile", "add", "cli", "--comment", "from wolfctl")
        await wolfctl(stack, "node", "add", "cli[01-02]", "-P", "default,cli")

        listed = json.loads(await wolfctl(stack, "node", "list", "-o", "json"))
        assert {"api01", "cli01", "cli02"} <= {node["name"] for node in listed}

        wanted = {
            subjects.profile("racks", "updated"),
            subjects.node("api01", "updated"),
            subjects.profile("cli", "updated"),
            *(subjects.node(n, verb) for n in ("cli01", "cli02") for verb in ("updated",)),
            *(subjects.node(n, "rendered") for n in ("api01", "cli01", "cli02")),
        }
        got: set[str] = set()
        async with asyncio.timeout(120):
            while not wanted <= got:
                got.add(await seen.get())

    for node in ("api01", "cli01", "cli02"):
        found = await eventually(
            lambda node=node: manifest(stack, node), f"{node}'s boot manifest", within=60
        )
        assert found.system_digests, found


async def test_the_token_is_wanted_by_the_api_and_by_nats(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.url("registry"), timeout=30) as api:
        refused = await api.put(f"{names.API_PREFIX}/nodes/nobody", json={})
        assert refused.status_code == 401
    env = stack.wolfctl_env()
    env["WOLFPACK_NATS"] = stack.nats_url()  # no token
    done = await run_cli_async("wolfctl", "node", "status", "-w", env=env, within=120)
    assert done.returncode != 0 and "Authorization Violation" in done.stderr, done.stderr
