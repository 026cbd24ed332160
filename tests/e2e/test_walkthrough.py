"""The issue's check, as an administrator runs it: `wolfpack up`, wolfctl, a NATS subscriber,
the merged view, a stale write, bad input, no token, and a full restart that keeps everything."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cli import run_cli
from tests.stack import UpStack, nats_client, start_up

API = "/api/v1"


def wolfctl(stack: UpStack, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("wolfctl", *args, env={"WOLFPACK_DATA": str(stack.data)}, within=60)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpStack]:
    with start_up(tmp_path_factory.mktemp("up") / "data") as running:
        yield running


async def test_walkthrough_and_restart(stack: UpStack, tmp_path: Path) -> None:
    headers = {"Authorization": f"Bearer {stack.token}"}
    async with nats_client(stack.nats_url) as nc:
        # Only the registry's `updated` events: overlayd's `rendered` ones interleave with them.
        events = await nc.subscribe("wolfpack.*.*.updated")
        await nc.flush()

        r = wolfctl(stack, "profile", "add", "compute", "--kernelargs", "quiet,console=ttyS0")
        assert r.returncode == 0, r.stderr
        r = wolfctl(
            stack,
            "node",
            "add",
            "n[01-20]",
            "--profile",
            "compute",
            "--netname",
            "default",
            "--ipaddr",
            "10.10.0.11",
            "--netmask",
            "255.255.0.0",
        )
        assert r.returncode == 0, r.stderr
        listed = json.loads(wolfctl(stack, "node", "list", "-o", "json").stdout)
        assert len(listed) == 20

        subjects = [(await events.next_msg(timeout=5)).subject for _ in range(21)]
        assert subjects.count("wolfpack.profile.compute.updated") == 1
        assert sorted(s for s in subjects if s.startswith("wolfpack.node.")) == sorted(
            f"wolfpack.node.n{i:02d}.updated" for i in range(1, 21)
        )

    async with httpx.AsyncClient(base_url=stack.registry_url, headers=headers) as api:
        merged = (await api.get(f"{API}/nodes/n07", params={"merged": "true"})).json()
        assert merged["node"]["kernel"]["args"] == ["quiet", "console=ttyS0"]
        assert merged["provenance"]["kernel.args"] == ["compute", "compute"]
        assert merged["node"]["network_devices"]["default"]["ipaddr"] == "10.10.0.17"

        rev = (await api.get(f"{API}/nodes/n07")).json()["revision"]
        await api.patch(f"{API}/nodes/n07", json={"comment": "fresh"})
        stale = await api.patch(
            f"{API}/nodes/n07", json={"comment": "stale"}, headers={"If-Match": str(rev)}
        )
        assert stale.status_code == 409

        before = (await api.get(f"{API}/export")).text
        bad = await api.patch(
            f"{API}/nodes/n07", json={"network_devices": {"default": {"hwaddr": "not-a-mac"}}}
        )
        assert 400 <= bad.status_code < 500 and "not-a-mac" in bad.json()["error"]
        async with httpx.AsyncClient(base_url=stack.registry_url) as anonymous:
            assert (await anonymous.put(f"{API}/nodes/x", json={})).status_code == 401
        assert (await api.get(f"{API}/export")).text == before

        await api.put(f"{API}/profiles/a", json={})
        assert (await api.patch(f"{API}/profiles/compute", json={"profiles": ["a"]})).is_success
        cycle = await api.patch(f"{API}/profiles/a", json={"profiles": ["compute"]})
        assert cycle.status_code == 400 and "a -> compute -> a" in cycle.json()["error"]
        assert "profiles" not in (await api.get(f"{API}/profiles/a")).json()

    # A full stop and start keeps every node: the state lives in JetStream on disk.
    stack.process.send_signal(signal.SIGTERM)
    assert stack.process.wait(30) == 0
    with start_up(stack.data, port_offset=stack.port_offset) as again:
        listed = json.loads(wolfctl(again, "node", "list", "-o", "json").stdout)
        assert sorted(n["name"] for n in listed) == [f"n{i:02d}" for i in range(1, 21)]
        n07 = next(n for n in listed if n["name"] == "n07")
        assert n07["comment"] == "fresh"
