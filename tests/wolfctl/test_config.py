"""Where wolfctl finds the registry and its token: flags, environment, data dir, default."""

from __future__ import annotations

from pathlib import Path

import pytest

from libs.common.apiclient.config import DEFAULT_URL, api_base, resolve
from libs.common.endpoints import Endpoints, write_endpoints
from libs.common.errors import Invalid


def data(
    tmp_path: Path, *, token: str | None = None, registry: str | None = None
) -> dict[str, str]:
    if token is not None:
        (tmp_path / "api.token").write_text(token)
    if registry is not None:
        found = Endpoints(
            nats="nats://127.0.0.1:4222",
            services={"registry": registry},
            token_file=str(tmp_path / "api.token"),
        )
        write_endpoints(tmp_path, found)
    return {"WOLFPACK_DATA": str(tmp_path)}


def test_nothing_configured_gives_the_default(tmp_path: Path) -> None:
    cfg = resolve(data(tmp_path))
    assert cfg.url == DEFAULT_URL == "http://127.0.0.1:9870"
    assert cfg.token is None
    assert cfg.base_url == "http://127.0.0.1:9870/api/v1"


def test_data_dir_gives_token_and_endpoint(tmp_path: Path) -> None:
    env = data(tmp_path, token="s3cret\n", registry="http://10.0.0.1:19870")
    cfg = resolve(env)
    assert cfg.url == "http://10.0.0.1:19870"
    assert cfg.token == "s3cret"


def test_environment_wins_over_data_dir(tmp_path: Path) -> None:
    env = data(tmp_path, token="from-file", registry="http://10.0.0.1:19870")
    env |= {"WOLFPACK_URL": "http://reg:1", "WOLFPACK_TOKEN": "from-env"}
    cfg = resolve(env)
    assert (cfg.url, cfg.token) == ("http://reg:1", "from-env")


def test_flags_win_over_environment(tmp_path: Path) -> None:
    env = data(tmp_path, token="from-file") | {"WOLFPACK_URL": "http://reg:1"}
    env["WOLFPACK_TOKEN"] = "from-env"
    cfg = resolve(env, url="http://flag:2", token="from-flag")
    assert (cfg.url, cfg.token) == ("http://flag:2", "from-flag")


def test_data_dir_defaults_to_var_wolfpack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "var" / "wolfpack").mkdir(parents=True)
    data(tmp_path / "var" / "wolfpack", token="here", registry="http://h:3")
    cfg = resolve({})
    assert (cfg.url, cfg.token) == ("http://h:3", "here")


def test_endpoints_without_registry_falls_back(tmp_path: Path) -> None:
    write_endpoints(tmp_path, Endpoints(nats="nats://x:4222", services={}, token_file=""))
    assert resolve({"WOLFPACK_DATA": str(tmp_path)}).url == DEFAULT_URL


def test_broken_endpoints_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "endpoints.json").write_text("{not json")
    with pytest.raises(Invalid, match=r"endpoints\.json"):
        resolve({"WOLFPACK_DATA": str(tmp_path)})


def test_empty_token_file_means_no_token(tmp_path: Path) -> None:
    assert resolve(data(tmp_path, token="  \n")).token is None


@pytest.mark.parametrize(
    "url",
    ["http://h:9870", "http://h:9870/", "http://h:9870/api/v1", "http://h:9870/api/v1/"],
)
def test_api_prefix_added_once(url: str) -> None:
    assert api_base(url) == "http://h:9870/api/v1"
