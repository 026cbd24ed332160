"""tests/seeds.py: a fixed seed under CI, a given one anywhere, and always the one printed."""

from __future__ import annotations

import random

import pytest

from tests.seeds import CI_SEED, ENV, seeded_random


def draws(rng: random.Random) -> list[int]:
    return [rng.randrange(1 << 30) for _ in range(3)]


def test_under_ci_the_seed_is_fixed_and_printed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CI", "true")
    monkeypatch.delenv(ENV, raising=False)
    assert draws(seeded_random()) == draws(random.Random(CI_SEED))
    assert capsys.readouterr().out == f"{ENV}={CI_SEED}\n"


def test_a_given_seed_replays_a_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv(ENV, raising=False)
    first = draws(seeded_random())
    printed = capsys.readouterr().out
    assert printed.startswith(f"{ENV}=")
    monkeypatch.setenv(ENV, printed.strip().split("=")[1])
    assert draws(seeded_random()) == first
