"""libs.common.http under hostile input, found by tests/hostile: a client that leaves
mid-request is no server error, and the OpenAPI document says what the routes really answer
(several success codes, raw bodies), so schemathesis can hold them to it."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator

import msgspec
import pytest
import uvicorn
from fastapi import FastAPI, Request, Response

from libs.common.http.app import create_app
from libs.common.http.bodies import BINARY, TEXT, YAML, decode_body, encode
from libs.common.http.openapi import body_schema


class Thing(msgspec.Struct, kw_only=True):
    name: str


def build_app() -> FastAPI:
    app = create_app("hostile", title="hostile", version="1")

    @app.put(
        "/things/{name}",
        openapi_extra=body_schema(request=Thing, response=Thing, status=(200, 201)),
    )
    async def put_thing(name: str, request: Request) -> Response:
        return encode(await decode_body(request, Thing), status=201)

    @app.put("/files/{name}", openapi_extra=body_schema(request_raw=BINARY, response=Thing))
    async def put_file(name: str, request: Request) -> Response:
        return encode(Thing(name=str(len(await request.body()))))

    @app.get("/export", openapi_extra=body_schema(response_raw=(YAML, TEXT)))
    async def export() -> Response:
        return Response("a: 1\n", media_type=YAML)

    return app


class Seen(logging.Handler):
    """Sets `event` when a record from the app's HTTP logger arrives."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.event.set()


@pytest.fixture
async def served() -> AsyncIterator[tuple[int, Seen]]:
    seen = Seen()
    logger = logging.getLogger("wolfpack.hostile.http")
    logger.addHandler(seen)
    logger.setLevel(logging.INFO)
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    server = uvicorn.Server(uvicorn.Config(build_app(), log_config=None, lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[listening]))
    try:
        yield listening.getsockname()[1], seen
    finally:
        server.should_exit = True
        await task
        listening.close()
        logger.removeHandler(seen)


async def test_a_client_leaving_mid_body_is_no_server_error(served: tuple[int, Seen]) -> None:
    port, seen = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b'PUT /things/a HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"na')
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    await asyncio.wait_for(seen.event.wait(), 10)
    (record,) = seen.records
    assert record.levelno == logging.INFO and record.exc_info is None
    assert "PUT /things/a: the client left mid-request" in record.getMessage()
    # And the next client is answered as usual.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b'PUT /things/b HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n{"name":"b"}')
    assert (await reader.readline()).startswith(b"HTTP/1.1 201")
    writer.close()


async def test_the_openapi_document_names_every_answer(served: tuple[int, Seen]) -> None:
    port, _ = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /openapi.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    doc = msgspec.json.decode((await reader.read()).partition(b"\r\n\r\n")[2])
    writer.close()
    paths = doc["paths"]
    put = paths["/things/{name}"]["put"]["responses"]
    assert {"200", "201"} <= set(put)
    assert (
        put["201"]["content"]["application/json"]["schema"]
        == put["200"]["content"]["application/json"]["schema"]
    )
    upload = paths["/files/{name}"]["put"]["requestBody"]["content"]
    assert upload == {BINARY: {"schema": {"type": "string", "format": "binary"}}}
    export = paths["/export"]["get"]["responses"]["200"]["content"]
    assert export[YAML] == {"schema": {"type": "object"}}
    assert export[TEXT] == {"schema": {"type": "string"}}
