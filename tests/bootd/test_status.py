"""Boot stages: every fetch and agent report is an event on NATS and a line of the node's
timeline in `GET /api/v1/status`; Warewulf's `/provision` and per-stage routes."""

from __future__ import annotations

import asyncio

import httpx

from libs.common import subjects
from libs.common.bus.connection import Bus
from libs.common.models.boot_stage import BootStage
from tests.bootd.conftest import Bootd, answered, boot_node, fresh_mac, script_booting


def urls(script: str) -> list[str]:
    """The blob URLs of the kernel and initrd lines (the runtime overlay's is not a blob)."""
    return [
        word
        for line in script.splitlines()
        if line.startswith(("kernel ", "initrd "))
        for word in line.split()
        if "/blobs/" in word
    ]


async def test_a_boot_is_a_sequence_of_stage_events(
    bootd: Bootd, bus: Bus, http: httpx.AsyncClient
) -> None:
    mac = fresh_mac()
    files = await boot_node(bus, bootd.store, "st1", mac)
    script = await script_booting(http, mac)
    events = await bus.subscribe(subjects.node("st1", "boot"), BootStage)
    try:
        await http.get(f"/ipxe/{mac}")
        for url in urls(script):
            assert (await http.get(url)).status_code == 200
        report = {"stage": "runtime", "message": "applied", "runtime_digest": "x"}
        assert (await http.post(f"/status/{mac}", json=report)).status_code == 204
        seen: list[BootStage] = []
        async with asyncio.timeout(10):
            async for _, event in events:
                seen.append(event)
                if event.stage == "agent":
                    break
    finally:
        await events.stop()
    # bootd's publishes are buffered: the script fetched while waiting may arrive here too.
    while len(seen) > 6 and seen[0].stage == "ipxe":
        seen.pop(0)
    assert [e.stage for e in seen] == ["ipxe", "kernel", "image", "system", "system", "agent"]
    assert all(e.ok and e.node == "st1" and e.hwaddr == mac for e in seen)
    assert seen[1].bytes == len(files.kernel)
    assert seen[2].bytes == len(files.image)
    assert seen[0].remote.startswith("127.0.0.1:")

    status = await http.get("/api/v1/status")
    assert status.status_code == 401
    authed = await http.get("/api/v1/status", headers={"Authorization": f"Bearer {bootd.token}"})
    assert authed.status_code == 200
    mine = next(n for n in authed.json() if n["node"] == "st1")
    assert mine["stage"] == "agent"
    stages = [e["stage"] for e in mine["timeline"]]
    assert stages[-6:] == ["ipxe", "kernel", "image", "system", "system", "agent"]


async def test_provision_and_stage_aliases(bootd: Bootd, bus: Bus, http: httpx.AsyncClient) -> None:
    mac = fresh_mac()
    files = await boot_node(bus, bootd.store, "st2", mac)
    await script_booting(http, mac)
    dashed = mac.replace(":", "-").upper()
    assert "kernel --name" in (await http.get(f"/provision/{dashed}?stage=ipxe")).text
    assert (await http.get(f"/provision/{dashed}?stage=kernel")).content == files.kernel
    assert (await http.get(f"/provision/{dashed}?stage=image")).content == files.image
    assert (await http.get(f"/kernel/{dashed}")).content == files.kernel
    assert (await http.get(f"/image/{dashed}")).content == files.image
    # Several system overlay archives go out end to end, as the kernel unpacks them.
    assert (await http.get(f"/system/{dashed}")).content == b"".join(files.systems)
    assert (await http.get(f"/provision/{dashed}?stage=system")).content == b"".join(files.systems)
    runtime = await http.get(f"/provision/{dashed}?stage=runtime")
    assert runtime.status_code == 403  # secure mode, unprivileged port
    bad = await http.get(f"/provision/{dashed}?stage=bogus")
    assert bad.status_code == 400 and "unknown stage" in bad.json()["error"]
    assert (await http.get(f"/kernel/{fresh_mac()}")).status_code == 404


async def test_stage_aliases_check_the_asset_key(
    bootd: Bootd, bus: Bus, http: httpx.AsyncClient
) -> None:
    mac = fresh_mac()
    files = await boot_node(bus, bootd.store, "st3", mac, asset_key="k3")
    await answered(
        http,
        f"/kernel/{mac}",
        lambda answer: answer.status_code == 401,
        f"bootd asking {mac} for its asset key",
    )
    assert (await http.get(f"/provision/{mac}?stage=image&assetkey=no")).status_code == 401
    good = await http.get(f"/provision/{mac}?stage=kernel&assetkey=k3")
    assert good.status_code == 200 and good.content == files.kernel


async def test_restart_keeps_timelines_and_tftp_stages_show(
    bootd: Bootd, bus: Bus, http: httpx.AsyncClient
) -> None:
    """A second bootd on the same stream starts with the timelines the first one published;
    tftpd's stages join the timeline."""
    import msgspec

    from libs.common.models.boot_stage import BootStage as Stage
    from tests.stack import run_service, stop_process, wait_healthy

    mac = fresh_mac()
    events = await bus.subscribe(subjects.node("st4", "boot"), Stage)
    try:
        await boot_node(bus, bootd.store, "st4", mac)
        await script_booting(http, mac)
        # bootd publishes its stages after answering: the script's first, then tftpd's.
        async with asyncio.timeout(10):
            async for _, event in events:
                if event.stage == "ipxe":
                    break
    finally:
        await events.stop()
    await bus.nc.publish(
        subjects.node("st4", "boot"),
        msgspec.json.encode(Stage(node="st4", stage="tftp", file="undionly.kpxe")),
    )
    await bus.nc.flush()
    headers = {"Authorization": f"Bearer {bootd.token}"}
    await answered(
        http,
        "/api/v1/status",
        lambda answer: any(n["node"] == "st4" and n["stage"] == "tftp" for n in answer.json()),
        "the tftp stage of st4 in bootd's status",
        headers=headers,
    )
    process, port, _ = await asyncio.to_thread(run_service, "bootd", bootd.data, bootd.nats_url)
    try:
        url = f"http://127.0.0.1:{port}"
        await asyncio.to_thread(wait_healthy, url, process, bootd.data.parent / "bootd.log")
        async with httpx.AsyncClient(base_url=url, headers=headers) as second:
            status = (await second.get("/api/v1/status")).json()
        mine = next(n for n in status if n["node"] == "st4")
        stages = [e["stage"] for e in mine["timeline"]]
        assert "ipxe" in stages and stages[-1] == "tftp"
    finally:
        await asyncio.to_thread(stop_process, process)
