"""What the volumes keep: a registry restarted in the middle of a stream of writes loses none
that it acknowledged; `down` then `up -d` keeps nodes, images and blobs; `down -v` clears them.
Runs last of the deploy tests (file order): it takes the shared stack down and up again."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading

import httpx
import pytest

from libs.common import names
from tests.deploy.compose import DATA, ComposeFailed
from tests.deploy.stack import Stack
from tests.deploy.test_stack import wolfctl

CHROOT = "chroot-img"


def blobs(stack: Stack) -> set[str]:
    """The digests in the CAS (none when no blob was ever stored: not even its folder)."""
    done = stack.project.exec("registry", "find", f"{DATA}/cas/sha256", "-type", "f", check=False)
    if done.returncode != 0:
        assert "No such file" in done.stderr, done.stderr
        return set()
    return {line.rsplit("/", 1)[1] for line in done.stdout.split()}


async def put_acknowledged(stack: Stack, name: str, base: list[str]) -> None:
    """PUT node `name` until the registry acknowledges it, as a client retries: 503 and
    connection errors mean "again"; the published port is asked again after one. `base`:
    [registry URL, token]."""
    while True:
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                answer = await client.put(
                    f"{base[0]}{names.API_PREFIX}/nodes/{name}",
                    json={"comment": "written during a restart"},
                    headers={"Authorization": f"Bearer {base[1]}"},
                )
        except httpx.TransportError:
            await asyncio.sleep(0.2)
            with contextlib.suppress(ComposeFailed):  # no container while it restarts
                base[0] = await asyncio.to_thread(stack.url, "registry")
            continue
        if answer.status_code in (200, 201):
            return
        assert answer.status_code == 503, answer.text
        await asyncio.sleep(float(answer.headers.get("Retry-After", "1")))


async def test_a_registry_restart_loses_no_acknowledged_write(stack: Stack) -> None:
    target = [stack.url("registry"), stack.token()]
    acknowledged: list[str] = []
    restarted = threading.Event()

    def restart() -> None:
        stack.project.compose("restart", "registry")
        restarted.set()

    restarting = asyncio.create_task(asyncio.to_thread(restart))
    count = 0
    # Writes before, during and after the restart: 20 more once it is over.
    after = 0
    while after < 20:
        name = f"w{count:04d}"
        await put_acknowledged(stack, name, target)
        acknowledged.append(name)
        count += 1
        after += restarted.is_set()
    await restarting
    stack.project.wait_healthy(("registry",))

    listed = json.loads(await wolfctl(stack, "node", "list", "-o", "json"))
    missing = set(acknowledged) - {node["name"] for node in listed}
    assert not missing, f"acknowledged but lost: {sorted(missing)}"
    print(f"{len(acknowledged)} writes acknowledged across the restart, none lost")


@pytest.fixture(scope="module")
def kept(stack: Stack) -> None:
    """Something of every kind in the volumes: nodes (above), an image from a chroot folder
    in the import folder (its blobs in the CAS)."""
    tree = stack.project.import_dir / "chroot"
    (tree / "etc").mkdir(parents=True, exist_ok=True)
    (tree / "etc/hostname").write_text("chroot\n")
    (tree / "boot").mkdir(exist_ok=True)
    (tree / "boot/vmlinuz-1.0.0").write_bytes(b"not really a kernel\n")
    out = asyncio.run(wolfctl(stack, "image", "import", str(tree), CHROOT))
    assert f"image {CHROOT} built" in out, out


async def state(stack: Stack) -> tuple[set[str], set[str], set[str]]:
    nodes = json.loads(await wolfctl(stack, "node", "list", "-o", "json"))
    images = json.loads(await wolfctl(stack, "image", "list", "-o", "json"))
    return {n["name"] for n in nodes}, {i["name"] for i in images}, blobs(stack)


@pytest.mark.usefixtures("kept")
async def test_down_then_up_keeps_nodes_images_and_blobs(stack: Stack) -> None:
    before = await state(stack)
    assert before[0] and CHROOT in before[1] and before[2]
    stack.project.down()
    assert stack.project.volumes() == {
        stack.project.volume("nats-data"),
        stack.project.volume("wolfpack-data"),
    }
    again = await asyncio.to_thread(stack.up)
    print(f"up -d again (volumes kept) to every container healthy: {again:.1f} s")
    nodes, images, stored = await state(stack)
    assert (nodes, images) == before[:2]
    # Every blob is still there (services back up may store new ones: renders at start).
    assert not before[2] - stored, f"blobs lost: {sorted(before[2] - stored)}"
    if stored - before[2]:
        print(f"{len(stored - before[2])} blobs new after up -d (of {len(stored)})")


async def test_down_with_volumes_clears_everything(stack: Stack) -> None:
    stack.project.down("-v")
    assert stack.project.volumes() == set()
    await asyncio.to_thread(stack.up)
    nodes, images, stored = await state(stack)
    assert nodes == set() and images == set() and stored == set()
