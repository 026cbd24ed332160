"""An unknown MAC goes to the first discoverable node, through the real registry."""

from __future__ import annotations

import httpx

from tests.bootd.conftest import Bootd, answered, fresh_mac


async def test_first_discoverable_node_gets_the_mac(
    bootd: Bootd, api: httpx.AsyncClient, http: httpx.AsyncClient
) -> None:
    # d3 is made discoverable last: bootd's view can lag the registry, and any view of it
    # that has d3 discoverable then has d2 too, so the first discoverable node is always d2.
    for name, discoverable in (("d3", None), ("d1", None), ("d2", True)):
        body = {"discoverable": discoverable} if discoverable else {}
        assert (await api.put(f"/api/v1/nodes/{name}", json=body)).status_code in (200, 201)
    patched = await api.patch("/api/v1/nodes/d3", json={"discoverable": True})
    assert patched.status_code == 200, patched.text
    mac = fresh_mac()
    answer = (
        await answered(
            http,
            f"/ipxe/{mac.upper()}",
            lambda answer: "was given to node" in answer.text,
            f"{mac} given to a node",
        )
    ).text
    assert f"MAC {mac} was given to node d2" in answer
    assert f"chain {bootd.url}/ipxe/{mac}" in answer
    node = (await api.get("/api/v1/nodes/d2")).json()
    assert node["network_devices"]["default"]["hwaddr"] == mac
    assert node.get("discoverable") is None
    assert "network_devices" not in (await api.get("/api/v1/nodes/d1")).json()
    # The next unknown MAC goes to the next discoverable node; then none is left.
    other = fresh_mac()
    answer = (
        await answered(
            http, f"/ipxe/{other}", lambda answer: "d3" in answer.text, f"{other} given to d3"
        )
    ).text
    assert f"MAC {other} was given to node d3" in answer
    third = fresh_mac()
    assert "unconfigured" in (await http.get(f"/ipxe/{third}")).text
