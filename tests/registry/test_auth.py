"""Writes need the bearer token from DATA/api.token; reads too unless --public-read."""

from __future__ import annotations

import os
import stat

import httpx

API = "/api/v1"


async def test_writes_without_token_are_401_and_store_nothing(
    registry, api: httpx.AsyncClient
) -> None:
    async with httpx.AsyncClient(base_url=registry.url) as anonymous:
        for method, path in [
            ("PUT", "/nodes/x"),
            ("PATCH", "/nodes/x"),
            ("DELETE", "/nodes/x"),
            ("PUT", "/profiles/x"),
            ("POST", "/nodes:bulk"),
            ("POST", "/import"),
        ]:
            r = await anonymous.request(method, f"{API}{path}", json={"names": "x"})
            assert r.status_code == 401, (method, path)
            assert r.headers["www-authenticate"] == "Bearer"
            assert "token" in r.json()["error"]
        r = await anonymous.put(
            f"{API}/nodes/x", json={}, headers={"Authorization": "Bearer wrong"}
        )
        assert r.status_code == 401
        # Reads need the token too by default.
        assert (await anonymous.get(f"{API}/nodes")).status_code == 401
        assert (await anonymous.get("/healthz")).status_code == 200
    assert (await api.get(f"{API}/nodes")).json() == []


def test_token_file_is_private(registry) -> None:
    path = os.path.join(registry.data, "api.token")
    mode = stat.S_IMODE(os.stat(path).st_mode)
    assert mode == 0o600
    with open(path) as f:
        assert f.read().strip() == registry.token
