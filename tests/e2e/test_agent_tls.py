"""Under `wolfpack up --tls` the node agent fetches its runtime overlay, and reports, over
bootd's HTTPS port, checking bootd's certificate against the CA the system overlay gave it, as
Warewulf 4.7's wwclient does. Run for real: a `wolfpack up --tls --ip 127.0.0.1`, the node's
system overlay fetched from bootd and unpacked into a root, the agent (`sh`, curl) on it. The
plain port in the node's config is a closed one, so only HTTPS can work."""

from __future__ import annotations

import gzip
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final

import httpx
import pytest

from tests.needs import need_command, need_root
from tests.overlayd.agent_process import Agent
from tests.overlayd.helpers import following_boot
from tests.stack import UpStack, start_up
from tests.waiting import eventually

MAC: Final = "52:54:00:7e:00:01"
KEY: Final = "tls-asset-key"
WAIT: Final = 60.0


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[UpStack]:
    need_root("secure mode (the agent's curl binds a source port below 1024)")
    need_command("curl", "curl")
    with start_up(tmp_path / "data", None, "--tls", "--ip", "127.0.0.1") as up:
        yield up


def unpack(archive: bytes, root: Path) -> None:
    """One gzip'd newc archive of a system overlay, into `root`, as the kernel unpacks it."""
    subprocess.run(
        ["cpio", "-idmu", "--quiet"], input=gzip.decompress(archive), cwd=root, check=True
    )


async def test_the_agent_fetches_and_reports_over_https_trusting_only_the_clusters_ca(
    stack: UpStack, tmp_path: Path
) -> None:
    verify = ssl.create_default_context(cafile=str(stack.ca))
    headers = {"Authorization": f"Bearer {stack.token}"}
    async with httpx.AsyncClient(verify=verify, headers=headers, timeout=30) as api:
        device = {"hwaddr": MAC, "ipaddr": "10.66.0.1"}
        body = {"profiles": ["default"], "network_devices": {"default": device}, "asset_key": KEY}
        body |= {"tags": {"agent.interval": "3600"}}
        answer = await api.put(f"{stack.url('registry')}/api/v1/nodes/tls-1", json=body)
        assert answer.is_success, answer.text

        async with following_boot(stack.nats_url) as boot:
            manifest = await boot.manifest(
                "tls-1", lambda m: bool(m.system_digests and m.runtime_digest)
            )
        root = tmp_path / "root"
        root.mkdir()
        async with httpx.AsyncClient(timeout=30) as plain:  # what iPXE fetches
            for digest in manifest.system_digests:
                url = f"{stack.boot_url}/blobs/sha256/{digest}"
                got = await plain.get(url, params={"wwid": MAC, "assetkey": KEY})
                assert got.status_code == 200, got.text
                unpack(got.content, root)

        config = (root / "warewulf/config").read_text()
        https = f"https://127.0.0.1:{stack.port_offset + 9875}"
        assert f"WWBOOTD_TLS='{https}'" in config
        assert (root / "warewulf/ca.pem").read_bytes() == stack.ca.read_bytes()
        closed = config.replace(f"WWBOOTD='{stack.boot_url}'", "WWBOOTD='http://127.0.0.1:1'")
        assert closed != config
        (root / "warewulf/config").write_text(closed)

        agent = Agent(root, ["sh"], agent=root / "warewulf/wwclient")
        try:
            agent.wait_for_line(f"runtime overlay {manifest.runtime_digest} applied")
            assert f"fetching {https}/runtime/{MAC}" in agent.log[0], agent.log
            assert "10.66.0.1" in (root / "etc/hosts").read_text()  # the runtime overlay's
            # The agent's report reaches bootd over HTTPS too (it follows the log line).
            reported = f"runtime applied {manifest.runtime_digest}"
            await eventually(  # bootd's status API: asked, not told
                lambda: agent_reports(api, stack, "tls-1"),
                f"bootd's status showing {reported!r}",
                within=WAIT,
                until=lambda reports: reported in reports,
            )
        finally:
            agent.stop()


async def agent_reports(api: httpx.AsyncClient, stack: UpStack, node: str) -> list[str]:
    status = await api.get(f"{stack.url('bootd')}/api/v1/status")
    assert status.is_success, status.text
    return [
        stage["file"]
        for found in status.json()
        if found["node"] == node
        for stage in found["timeline"]
        if stage["stage"] == "agent"
    ]
