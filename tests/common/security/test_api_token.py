"""The API token file."""

from __future__ import annotations

import multiprocessing
import stat
from pathlib import Path

import pytest

from libs.common import names
from libs.common.errors import Invalid
from libs.common.security.api_token import ensure_token, read_token, tokens_equal


def test_token_is_created_once_with_mode_0600(data_dir: Path) -> None:
    assert read_token(data_dir) is None
    token = ensure_token(data_dir)
    path = data_dir / names.TOKEN_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(token) >= 32 and token.isascii() and " " not in token
    assert ensure_token(data_dir) == token
    assert read_token(data_dir) == token
    assert [p.name for p in data_dir.iterdir()] == [names.TOKEN_FILE]


def test_tokens_differ_between_installations(tmp_path: Path) -> None:
    assert ensure_token(tmp_path / "a") != ensure_token(tmp_path / "b")


def test_processes_starting_at_once_agree_on_one_token(data_dir: Path) -> None:
    with multiprocessing.get_context("spawn").Pool(6) as pool:
        tokens = pool.map(ensure_token, [data_dir] * 12)
    assert len(set(tokens)) == 1
    assert read_token(data_dir) == tokens[0]


def test_an_empty_token_file_is_reported(data_dir: Path) -> None:
    (data_dir / names.TOKEN_FILE).write_text("")
    with pytest.raises(Invalid, match="is empty"):
        ensure_token(data_dir)


def test_tokens_equal() -> None:
    assert tokens_equal("abc", "abc")
    assert not tokens_equal("abc", "abd")
    assert not tokens_equal("", "abc")
    assert not tokens_equal(None, "abc")
