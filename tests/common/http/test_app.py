"""libs.common.http (the app factory and its parts) on a real uvicorn server on 127.0.0.1:
errors, body limit, auth, docs."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator, Iterator

import httpx
import msgspec
import pytest
import uvicorn
from fastapi import Depends, FastAPI, Request, Response

from libs.common.errors import Conflict, NotFound
from libs.common.http.app import create_app
from libs.common.http.auth import TokenAuth
from libs.common.http.bodies import MiB, decode_body, encode
from libs.common.http.openapi import body_schema

TOKEN = "s3cret-token"


class NetDev(msgspec.Struct, kw_only=True):
    device: str | None = None
    mtu: int | None = None


class Thing(msgspec.Struct, kw_only=True):
    name: str
    network_devices: dict[str, NetDev] = {}


def build_app() -> FastAPI:
    app = create_app("test", title="test", version="1")
    auth = TokenAuth(TOKEN, public_read=False)
    public = TokenAuth(TOKEN, public_read=True)
    write, read = [Depends(auth.require_write)], [Depends(auth.require_read)]

    @app.put("/things/{name}", dependencies=write, openapi_extra=body_schema(request=Thing))
    async def put_thing(name: str, request: Request) -> Response:
        return encode(await decode_body(request, Thing))

    @app.get("/things/{name}", dependencies=read, openapi_extra=body_schema(response=Thing))
    async def get_thing(name: str) -> Response:
        if name == "ghost":
            raise NotFound("no thing named ghost", field="name")
        return encode(Thing(name=name))

    @app.get("/public/{name}", dependencies=[Depends(public.require_read)])
    async def get_public(name: str) -> Response:
        return encode(Thing(name=name))

    @app.post("/race")
    async def race() -> Response:
        raise Conflict("revision 3 is stale; the thing is at revision 4")

    @app.get("/count")
    async def count(n: int) -> Response:
        return encode({"n": n})

    @app.get("/cancelled-elsewhere")
    async def cancelled_elsewhere() -> Response:
        gone = asyncio.get_running_loop().create_future()
        gone.cancel()  # a bug: awaiting a future another task cancelled
        await gone
        return encode({})

    @app.get("/boom")
    async def boom() -> Response:
        raise RuntimeError("secret internals: /etc/shadow")

    return app


@pytest.fixture
def listening() -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()  # queue connections until uvicorn accepts: no wait for start-up needed
    with sock:
        yield sock


@pytest.fixture
async def client(listening: socket.socket) -> AsyncIterator[httpx.AsyncClient]:
    config = uvicorn.Config(build_app(), log_config=None, lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[listening]))
    port = listening.getsockname()[1]
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", timeout=30, trust_env=False
    ) as http:
        yield http
    server.should_exit = True
    await task


AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def test_healthz_names_the_service(client: httpx.AsyncClient) -> None:
    answer = await client.get("/healthz")
    assert answer.status_code == 200
    assert answer.json() == {"service": "test", "status": "ok"}


async def test_good_body_round_trips(client: httpx.AsyncClient) -> None:
    body = {"name": "n1", "network_devices": {"default": {"mtu": 9000}}}
    answer = await client.put("/things/n1", json=body, headers=AUTH)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["network_devices"]["default"]["mtu"] == 9000


async def test_malformed_json_is_400_naming_the_problem(client: httpx.AsyncClient) -> None:
    answer = await client.put("/things/n1", content=b'{"name": "n1",', headers=AUTH)
    assert answer.status_code == 400
    assert "not valid JSON" in answer.json()["error"]


async def test_wrong_type_is_400_naming_the_field_path(client: httpx.AsyncClient) -> None:
    body = {"name": "n1", "network_devices": {"default": {"mtu": "big"}}}
    answer = await client.put("/things/n1", json=body, headers=AUTH)
    assert answer.status_code == 400
    assert answer.json() == {
        "error": "Expected `int | null`, got `str`",
        "field": "network_devices.default.mtu",
    }


async def test_missing_field_is_named(client: httpx.AsyncClient) -> None:
    answer = await client.put("/things/n1", json={"network_devices": {}}, headers=AUTH)
    assert answer.status_code == 400
    assert answer.json()["field"] == "name"


async def test_empty_body_is_400(client: httpx.AsyncClient) -> None:
    answer = await client.put("/things/n1", content=b"", headers=AUTH)
    assert answer.status_code == 400
    assert "empty" in answer.json()["error"]


async def test_declared_large_body_is_413(client: httpx.AsyncClient) -> None:
    answer = await client.put("/things/n1", content=b" " * (10 * MiB), headers=AUTH)
    assert answer.status_code == 413
    assert "8 MiB" in answer.json()["error"]


async def test_streamed_large_body_is_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * MiB

    answer = await client.put("/things/n1", content=chunks(), headers=AUTH)
    assert "content-length" not in answer.request.headers  # really sent chunked
    assert answer.status_code == 413
    assert "8 MiB" in answer.json()["error"]


async def test_missing_token_is_401(client: httpx.AsyncClient) -> None:
    answer = await client.put("/things/n1", json={"name": "n1"})
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in answer.json()["error"]
    assert (await client.get("/things/n1")).status_code == 401


async def test_wrong_token_is_401(client: httpx.AsyncClient) -> None:
    for headers in ({"Authorization": "Bearer nope"}, {"Authorization": f"Basic {TOKEN}"}):
        answer = await client.get("/things/n1", headers=headers)
        assert answer.status_code == 401, headers
        assert answer.headers["www-authenticate"] == "Bearer"


async def test_good_token_is_200(client: httpx.AsyncClient) -> None:
    answer = await client.get("/things/n1", headers=AUTH)
    assert answer.status_code == 200
    assert answer.json()["name"] == "n1"


async def test_public_read_needs_no_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/public/n1")).status_code == 200


async def test_domain_errors_map_to_status(client: httpx.AsyncClient) -> None:
    missing = await client.get("/things/ghost", headers=AUTH)
    assert missing.status_code == 404
    assert missing.json() == {"error": "no thing named ghost", "field": "name"}
    stale = await client.post("/race")
    assert stale.status_code == 409
    assert "stale" in stale.json()["error"]


async def test_bad_query_parameter_is_400_naming_it(client: httpx.AsyncClient) -> None:
    answer = await client.get("/count", params={"n": "many"})
    assert answer.status_code == 400
    assert answer.json()["field"] == "n"


async def test_unknown_route_is_404_error_body(client: httpx.AsyncClient) -> None:
    answer = await client.get("/nowhere")
    assert answer.status_code == 404
    assert set(answer.json()) == {"error"}


async def test_unexpected_exception_is_generic_500(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="wolfpack.test.http"):
        answer = await client.get("/boom")
    assert answer.status_code == 500
    assert "internal error" in answer.json()["error"]
    assert "shadow" not in answer.text
    logged = [r for r in caplog.records if r.name == "wolfpack.test.http"]
    assert logged and logged[0].exc_info is not None
    assert "GET /boom" in logged[0].getMessage()


async def test_a_request_cut_off_by_shutdown_is_503_to_try_again(
    listening: socket.socket,
) -> None:
    # As a registry write waiting on a NATS that stops with it: uvicorn's graceful shutdown
    # ends and cancels the request, which must say "try again", not a bare 500.
    app = create_app("test", title="test", version="1")
    entered, never = asyncio.Event(), asyncio.Event()

    @app.patch("/stuck")
    async def stuck() -> Response:
        entered.set()
        await never.wait()
        return encode({})

    config = uvicorn.Config(app, log_config=None, lifespan="off", timeout_graceful_shutdown=0)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[listening]))
    port = listening.getsockname()[1]
    async with httpx.AsyncClient(timeout=30, trust_env=False) as http:
        asking = asyncio.create_task(http.patch(f"http://127.0.0.1:{port}/stuck"))
        await entered.wait()
        server.should_exit = True
        answer = await asking
    await serving
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "1"
    assert "try again" in answer.json()["error"]


async def test_a_cancelled_future_in_a_handler_is_a_500_not_a_shutdown(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.get("/cancelled-elsewhere")
    assert answer.status_code == 500


async def test_openapi_describes_msgspec_bodies(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    assert {"Thing", "NetDev", "ErrorBody"} <= set(schemas)
    assert "HTTPValidationError" not in schemas
    put = doc["paths"]["/things/{name}"]["put"]
    body = put["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/Thing"}
    assert "422" not in put["responses"]
    assert put["security"] == [{"HTTPBearer": []}]
    get = doc["paths"]["/things/{name}"]["get"]
    assert get["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Thing"
    }
    assert "x-wolfpack" not in json.dumps(doc)
    assert (await client.get("/docs")).status_code == 200
