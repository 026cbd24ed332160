"""Secrets at rest: `wolfpack up`'s nats-server encrypts its JetStream store (ChaCha20-Poly1305,
the key in DATA/nats.key), and a store it finds in clear (an install from before) is
encrypted at its first start with nothing lost."""

from __future__ import annotations

from pathlib import Path

import httpx

from libs.common import names
from libs.common.bus.server import NatsServer, free_port
from libs.common.models.node import IPMI, Node
from tests.stack import connected_bus, start_up

OLD_SECRET = "bmc-pass-from-before-7Qx"
NEW_SECRET = "bmc-pass-written-since-3Kd"


def store_holds(store: Path, text: str) -> list[str]:
    """The files below `store` whose bytes contain `text`."""
    wanted = text.encode()
    return [str(p) for p in store.rglob("*") if p.is_file() and wanted in p.read_bytes()]


async def test_up_encrypts_the_store_it_finds_in_clear_and_keeps_every_value(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    store = data / "nats"
    # An install from before: its store written in clear.
    server = NatsServer(store, port=free_port())
    await server.start()
    async with connected_bus(server.url) as bus:
        nodes = await bus.bucket(names.BUCKET_NODES, Node)
        await nodes.put("n1", Node(ipmi=IPMI(username="admin", password=OLD_SECRET)))
    await server.stop()
    assert store_holds(store, OLD_SECRET), "the check below would prove nothing"

    with start_up(data) as up:
        headers = {"Authorization": f"Bearer {up.token}"}
        async with httpx.AsyncClient(base_url=up.registry_url, headers=headers) as api:
            r = await api.get("/api/v1/nodes/n1", params={"secrets": "true"})
            assert r.status_code == 200, r.text
            assert r.json()["ipmi"]["password"] == OLD_SECRET
            r = await api.put("/api/v1/nodes/n2", json={"ipmi": {"password": NEW_SECRET}})
            assert r.status_code == 201, r.text

    assert store_holds(store, OLD_SECRET) == []
    assert store_holds(store, NEW_SECRET) == []
    assert (data / names.NATS_KEY_FILE).stat().st_mode & 0o777 == 0o600
    log = (store / "nats-server.log").read_text()
    assert "ChaCha20-Poly1305" in log and "Encrypting stream" in log
