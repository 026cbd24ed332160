"""tests/needs.py: a missing need skips a test on a developer's machine, fails it under CI."""

from __future__ import annotations

import pytest

from tests.needs import need_command, unavailable


def test_a_missing_need_skips_without_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no such thing"):
        unavailable("no such thing")


@pytest.mark.parametrize("ci", ["true", "1", "yes"])
def test_a_missing_need_fails_under_ci(monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match="CI=true and no such thing"):
        unavailable("no such thing")


def test_a_missing_command_names_its_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"\(Debian package wolf-tools\)"):
        need_command("no-such-wolfpack-tool", "wolf-tools")
    assert need_command("sh", "dash").endswith("/sh")
