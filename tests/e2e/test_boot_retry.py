"""iPXE honours bootd's `503` + `Retry-After`, for real: a lab whose `wolfpack up` allows one
transfer at a time (`WOLFPACK_MAX_TRANSFERS=1`, the `--max-transfers` flag's variable), a slow
reader holding that one slot while a QEMU machine (Debian's iPXE ROM, BIOS) asks for its
kernel, then letting go: the machine is deferred, asks again by itself, and boots.

iPXE's HTTP core (src/net/tcp/httpcore.c) retries any answer carrying a numeric Retry-After
after that many seconds, with no limit on the number of retries, and fails a 5xx without one.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from libs.runtime.lab import rootfs
from libs.runtime.lab.machine import add_node, power_on
from libs.runtime.lab.session import Lab
from tests.e2e.bootlab import opened, require_firmware
from tests.stalled_get import StalledGet

BOOT_TIMEOUT = 120.0


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("WOLFPACK_MAX_TRANSFERS", "1")  # read by `wolfpack up` at its start only
        # The holder stops reading: bootd's stall cut-off (60 s by default) must not free the
        # slot before the emulated machine has been deferred, however slow TCG is.
        env.setenv("WOLFPACK_BOOTD_STALL_SECONDS", "600")  # read by bootd at its start only
        with opened(tmp_path_factory.mktemp("bootlab-retry")) as running:
            env.delenv("WOLFPACK_MAX_TRANSFERS")
            env.delenv("WOLFPACK_BOOTD_STALL_SECONDS")
            yield running


async def serving(lab: Lab) -> dict[str, int]:
    answer = await lab.stack.api("bootd").get("/serving")
    answer.raise_for_status()
    assert answer.json()["stalls"]["limit_seconds"] == 600  # the holder is never cut off
    found: dict[str, int] = answer.json()["admission"]
    return found


def test_a_deferred_node_retries_and_boots(lab: Lab) -> None:
    require_firmware("bios")
    lab.run(deferred_then_booted(lab), timeout=300)


async def deferred_then_booted(lab: Lab) -> None:
    stack, events = lab.stack, lab.events
    node = lab.node("retry01", 20)
    since = time.monotonic()
    manifest = await add_node(stack, events, node, "first")
    bootd = stack.url("bootd")
    # Another client (no ?wwid=: not this node) takes the one slot with the same kernel.
    holder = await StalledGet.ask(f"{bootd}/blobs/sha256/{manifest.kernel_digest}")
    assert holder.head.startswith(b"HTTP/1.1 200"), holder.head
    assert (await serving(lab))["active"] == 1
    machine = await power_on(stack, node, "bios", lab.workdir)
    console = machine.console
    try:
        deferred = await events.stage(
            node.name, "kernel", BOOT_TIMEOUT, since, ok=False, where=lambda e: "503" in e.error
        )
        # iPXE asks again by itself after Retry-After, and is deferred again while the slot
        # is held: the script printed, no kernel yet. Then the slot is let go.
        again = await events.stage(
            node.name, "kernel", 30, deferred.at + 1e-3, ok=False, where=lambda e: "503" in e.error
        )
        await console.wait_for(rf"wolfpack: booting {node.name} \({node.mac}\)", 10)
        assert not any("Linux version" in line for line in console.lines)
        holder.close()
        sent = await events.stage(node.name, "kernel", 60, again.at)
        assert sent.event.bytes > 0
        await console.wait_for(r"Linux version \S+-cloud-amd64", 60)
        await console.wait_for(re.escape(rootfs.INIT_MARKER) + r" \(pid 1 is init\)", 60)
        counts = await serving(lab)
        assert counts["deferred"] >= 2 and counts["peak"] == 1, counts
        kernel = [e for e in events.of(node.name) if e.stage == "kernel"]
        seen = [(round(e.at - kernel[0].at, 1), e.error or "sent") for e in kernel]
        print(f"kernel fetches (s after the first, outcome): {seen}")
        # No `goto retry` in the script ran: iPXE waited on its own, on the same command.
        assert not any("trying again" in line for line in console.lines)
    except BaseException:
        print(f"--- {console.name}, last lines:\n{console.tail(40)}")
        print(f"--- wolfpack up, last lines:\n{stack.log.tail(30)}")
        raise
    finally:
        holder.close()
        await machine.stop()
