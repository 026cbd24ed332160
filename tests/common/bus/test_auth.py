"""`wolfpack up`'s NATS token: presented to that server only, refused at once when wrong, and
never shown in a URL a log or a message carries."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from libs.common import names
from libs.common.bus.auth import ensure_nats_auth, nats_token, shown_url
from libs.common.bus.connection import Bus, NatsRefused
from libs.common.bus.server import NatsServer, free_port
from libs.common.endpoints import Endpoints, write_endpoints
from libs.common.security.api_token import ensure_token

OURS = "nats://127.0.0.1:4222"


def up_folder(tmp_path: Path) -> str:
    write_endpoints(tmp_path, Endpoints(nats=OURS, services={}, token_file="api.token"))
    return ensure_token(tmp_path, names.NATS_TOKEN_FILE)


def test_the_token_goes_to_ups_own_server_only(tmp_path: Path) -> None:
    token = up_folder(tmp_path)
    assert nats_token(OURS, tmp_path) == token
    assert nats_token("nats://nats.example.org:4222", tmp_path) is None  # a site's server
    assert nats_token("nats://user:pw@127.0.0.1:4222", tmp_path) is None  # its own credentials
    assert nats_token(OURS, tmp_path / "elsewhere") is None  # no up wrote that folder


def test_the_token_goes_to_the_servers_aliases_too_and_to_no_list_with_a_stranger(
    tmp_path: Path,
) -> None:
    alias = "nats://127.0.0.1:14222"
    known = Endpoints(nats="nats://nats:4222", services={}, token_file="t", nats_aliases=[alias])
    write_endpoints(tmp_path, known)
    token = ensure_token(tmp_path, names.NATS_TOKEN_FILE)
    assert nats_token("nats://nats:4222", tmp_path) == token
    assert nats_token(alias, tmp_path) == token  # a host-networked container's way there
    assert nats_token(f"nats://nats:4222,{alias}", tmp_path) == token
    assert nats_token("nats://nats:4222,nats://other:4222", tmp_path) is None


def test_urls_are_shown_without_credentials() -> None:
    assert shown_url("nats://s3cret@127.0.0.1:4222") == "nats://***@127.0.0.1:4222"
    assert shown_url("nats://u:p@a:1,nats://b:2") == "nats://***@a:1,nats://b:2"
    assert shown_url(OURS) == OURS


async def test_a_refused_token_is_an_error_at_once_not_a_retry(tmp_path: Path) -> None:
    write_endpoints(tmp_path, Endpoints(nats=OURS, services={}, token_file="api.token"))
    (tmp_path / names.NATS_TOKEN_FILE).write_text("right-token\n")
    config = ensure_nats_auth(tmp_path)  # as up does: the token kept, its config written
    server = NatsServer(tmp_path / "nats", port=free_port(), config=config)
    await server.start()
    try:
        assert "right-token" not in " ".join(server.command())  # in a 0600 file, not argv
        assert config.stat().st_mode & 0o077 == 0
        async with asyncio.timeout(10):
            with pytest.raises(NatsRefused, match="refused our credentials"):
                await Bus.connect(server.url, "test-wrong", token="wrong-token")
            with pytest.raises(NatsRefused):
                await Bus.connect(server.url, "test-none")
        bus = await Bus.connect(server.url, "test-right", token="right-token")
        await bus.close()
    finally:
        await server.stop()
