"""API answers become typed errors; an unreachable service is one clear sentence."""

from __future__ import annotations

import socket

import pytest
from click.testing import CliRunner

from libs.common.apiclient.builder import BuilderClient
from libs.common.apiclient.client import ApiClient, Registry, Unreachable, error_from_response
from libs.common.apiclient.config import ApiConfig
from libs.common.apiclient.overlayd import OverlaydClient
from libs.common.errors import Conflict, Invalid, NotFound, Unauthorized, WolfpackError
from libs.wolfctl.main import cli


def test_error_body_keeps_message_and_field() -> None:
    err = error_from_response(
        422,
        b'{"error": "\\"zz\\" is not a MAC address", "field": "network_devices.default.hwaddr"}',
    )
    assert isinstance(err, Invalid)
    assert str(err) == 'network_devices.default.hwaddr: "zz" is not a MAC address'


@pytest.mark.parametrize(
    ("status", "cls"),
    [(400, Invalid), (401, Unauthorized), (404, NotFound), (409, Conflict), (500, WolfpackError)],
)
def test_status_picks_the_error_type(status: int, cls: type) -> None:
    err = error_from_response(status, b'{"error": "nope"}')
    assert type(err) is cls and err.message == "nope"


def test_fastapi_detail_and_plain_text_read_as_one_line() -> None:
    detail = b'{"detail": [{"loc": ["body", "mtu"], "msg": "not an int"}]}'
    assert str(error_from_response(422, detail)) == "mtu: not an int"
    assert str(error_from_response(500, b"database\n  on fire")) == (
        "the registry answered 500: database on fire"
    )
    page = b"<!DOCTYPE html>\n<html><body><h1>502</h1></body></html>"
    assert str(error_from_response(502, page)) == "the registry answered 502: Bad Gateway"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_refused_connection_says_what_to_do() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    async with Registry(ApiConfig(url=url)) as api:
        with pytest.raises(Unreachable) as caught:
            await api.request("GET", "/nodes")
    assert str(caught.value) == f"cannot reach the registry at {url}: is `wolfpack up` running?"


@pytest.mark.parametrize(
    ("client", "name", "variable"),
    [
        (BuilderClient, "the builder", "WOLFPACK_BUILDER_URL"),
        (OverlaydClient, "overlayd", "WOLFPACK_OVERLAYD_URL"),
    ],
)
async def test_other_services_name_themselves_and_their_variable(
    client: type[ApiClient], name: str, variable: str
) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    async with client(ApiConfig(url=url)) as api:
        with pytest.raises(Unreachable) as caught:
            await api.get("/healthz", dict)
    assert str(caught.value) == (
        f"cannot reach {name} at {url}: is `wolfpack up` running? "
        f"(set ${variable} if it runs elsewhere)"
    )


def test_cli_prints_one_line_and_exits_1_when_unreachable() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    result = CliRunner().invoke(cli, ["--url", url, "node", "list"])
    assert result.exit_code == 1
    assert result.output == (
        f"wolfctl: error: cannot reach the registry at {url}: is `wolfpack up` running?\n"
    )
    assert result.exception is None or isinstance(result.exception, SystemExit)
