"""Flags and environment variables → Settings (libs/runtime/settings_flags.py): each service
setting comes from its flag or its variable, with the same default, bad values are refused
before anything starts, and `wolfpack up` hands every setting on to the services it runs."""

from __future__ import annotations

import shlex
from typing import Any

import click
import pytest

from libs.common.settings import TFTP_TRANSFERS, Settings
from libs.runtime.cli import run
from libs.runtime.settings_flags import to_settings
from libs.runtime.up import run_argv

# Settings field, its flag (with a value), its variable and the value both give.
SERVICE_SETTINGS = [
    (
        "bootd_stall_seconds",
        ["--bootd-stall-seconds", "7.5"],
        "WOLFPACK_BOOTD_STALL_SECONDS",
        "7.5",
        7.5,
    ),
    ("bootd_secure", ["--no-bootd-secure"], "WOLFPACK_BOOTD_SECURE", "false", False),
    ("tftp_per_client", ["--tftp-per-client", "3"], "WOLFPACK_TFTP_PER_CLIENT", "3", 3),
    ("tftp_root", ["--tftp-root", "/srv/tftp"], "WOLFPACK_TFTP_ROOT", "/srv/tftp", "/srv/tftp"),
    ("events_max_age", ["--events-max-age", "2h"], "WOLFPACK_EVENTS_MAX_AGE", "2h", 7200.0),
    ("events_max_age", ["--events-max-age", "0"], "WOLFPACK_EVENTS_MAX_AGE", "0", 0.0),
    ("events_max_age", ["--events-max-age", "1d12h"], "WOLFPACK_EVENTS_MAX_AGE", "36h", 129600),
    (
        "events_max_bytes",
        ["--events-max-bytes", "64MiB"],
        "WOLFPACK_EVENTS_MAX_BYTES",
        "64MiB",
        64 * 1024**2,
    ),
    ("events_max_bytes", ["--events-max-bytes", "5G"], "WOLFPACK_EVENTS_MAX_BYTES", "5GB", 5e9),
]
VARIABLES = [variable for _, _, variable, _, _ in SERVICE_SETTINGS]


def settings_of(service: str, *args: str) -> Settings:
    """What `wolfpack run SERVICE ARGS` would run SERVICE with (the environment as it is)."""
    with run.make_context("run", [service, *args]) as ctx:
        options: dict[str, Any] = dict(ctx.params)
    options.pop("service")
    return to_settings(**options)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in VARIABLES:
        monkeypatch.delenv(variable, raising=False)


@pytest.mark.parametrize(("field", "flag", "variable", "text", "value"), SERVICE_SETTINGS)
def test_a_service_setting_comes_from_its_flag_or_its_variable(
    monkeypatch: pytest.MonkeyPatch,
    field: str,
    flag: list[str],
    variable: str,
    text: str,
    value: Any,
) -> None:
    assert getattr(settings_of("bootd"), field) == getattr(Settings(), field) != value
    assert getattr(settings_of("bootd", *flag), field) == value
    monkeypatch.setenv(variable, text)
    assert getattr(settings_of("tftpd"), field) == value


@pytest.mark.parametrize(
    ("args", "variable", "text"),
    [
        (["--bootd-stall-seconds", "0"], "WOLFPACK_BOOTD_STALL_SECONDS", "inf"),
        (["--bootd-stall-seconds", "nan"], "WOLFPACK_BOOTD_STALL_SECONDS", "-1"),
        (["--tftp-per-client", "0"], "WOLFPACK_TFTP_PER_CLIENT", str(TFTP_TRANSFERS + 1)),
        (["--tftp-per-client", "lots"], "WOLFPACK_TFTP_PER_CLIENT", "-1"),
        (["--no-bootd-secure"], "WOLFPACK_BOOTD_SECURE", "maybe"),
        (["--events-max-age", "7 days"], "WOLFPACK_EVENTS_MAX_AGE", "-1d"),
        (["--events-max-age", "0.5s"], "WOLFPACK_EVENTS_MAX_AGE", "week"),
        (["--events-max-bytes", "1PB"], "WOLFPACK_EVENTS_MAX_BYTES", "100"),
        (["--events-max-bytes", "0", "--events-max-age", "0"], "WOLFPACK_EVENTS_MAX_BYTES", "-5"),
    ],
)
def test_a_bad_value_is_refused_before_anything_starts(
    monkeypatch: pytest.MonkeyPatch, args: list[str], variable: str, text: str
) -> None:
    if args != ["--no-bootd-secure"]:
        with pytest.raises(click.BadParameter):
            settings_of("bootd", *args)
    monkeypatch.setenv(variable, text)
    with pytest.raises(click.BadParameter):
        settings_of("bootd")


@pytest.mark.parametrize(
    "flags", [[], [arg for _, flag, _, _, _ in SERVICE_SETTINGS for arg in flag]]
)
def test_up_runs_each_service_with_its_own_settings(flags: list[str]) -> None:
    settings = settings_of("bootd", "--data", "/d", "--nats", "nats://n:1", *flags)
    argv = run_argv(settings, "bootd")
    assert argv[argv.index("run") + 1] == "bootd", shlex.join(argv)
    assert settings_of(*argv[argv.index("run") + 1 :]) == settings
