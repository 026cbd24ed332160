"""The registry documents itself: OpenAPI at /openapi.json and the browsable /docs."""

from __future__ import annotations

import httpx


async def test_openapi_describes_the_msgspec_bodies(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/openapi.json")).json()
    paths = spec["paths"]
    for path in (
        "/api/v1/nodes",
        "/api/v1/nodes/{name}",
        "/api/v1/nodes:bulk",
        "/api/v1/profiles/{name}",
        "/api/v1/import",
        "/api/v1/export",
    ):
        assert path in paths, path
    schemas = spec["components"]["schemas"]
    assert {"Node", "Profile", "NetDev", "BulkAdd", "ErrorBody"} <= set(schemas)
    put = paths["/api/v1/nodes/{name}"]["put"]
    assert put["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Node"
    }
    # Field descriptions come from the models, defined once.
    assert schemas["NetDev"]["properties"]["hwaddr"]["description"] == "MAC address"
    assert (await api.get("/docs")).status_code == 200
