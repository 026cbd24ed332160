"""Points in time as `--since` takes them (libs/common/moments.py): ISO 8601 with and without
an offset, `now`, and durations ago; always an aware UTC datetime; bad text refused naming it."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.common.errors import Invalid
from libs.common.moments import parse_time

UTC = datetime.UTC
NOW = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "when"),
    [
        ("now", NOW),
        ("NOW", NOW),
        ("10m", NOW - datetime.timedelta(minutes=10)),
        ("2h", NOW - datetime.timedelta(hours=2)),
        ("1d", NOW - datetime.timedelta(days=1)),
        ("1h30m", NOW - datetime.timedelta(minutes=90)),
        ("90s ago", NOW - datetime.timedelta(seconds=90)),
        ("0s", NOW),
        ("2024-04-30T10:00:00Z", datetime.datetime(2024, 4, 30, 10, tzinfo=UTC)),
        ("2024-04-30T10:00:00+02:00", datetime.datetime(2024, 4, 30, 8, tzinfo=UTC)),
        ("2024-04-30T10:00:00.123456Z", datetime.datetime(2024, 4, 30, 10, 0, 0, 123456, UTC)),
        # What `wolfctl events` prints, cut to microseconds (never rounded up past the event).
        ("2024-04-30T10:00:00.123456789Z", datetime.datetime(2024, 4, 30, 10, 0, 0, 123456, UTC)),
    ],
)
def test_times(text: str, when: datetime.datetime) -> None:
    found = parse_time(text, NOW)
    assert found == when and found.tzinfo == UTC


def test_a_time_without_an_offset_is_local_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setenv("TZ", "Europe/Paris")  # +02:00 in May
    time.tzset()
    try:
        assert parse_time("2024-05-01T14:00:00", NOW) == NOW
        assert parse_time("2024-05-01", NOW) == datetime.datetime(2024, 4, 30, 22, tzinfo=UTC)
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize("text", ["", "yesterday", "10 minutes", "2024-13-01", "-5m", "ago"])
def test_bad_times_are_refused_naming_the_text(text: str) -> None:
    with pytest.raises(Invalid) as err:
        parse_time(text, NOW)
    assert repr(text) in err.value.message


def test_a_duration_before_year_one_is_refused() -> None:
    with pytest.raises(Invalid, match="before year 1"):
        parse_time("1000000d", NOW)


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError):
        parse_time("now", NOW.replace(tzinfo=None))


@given(st.integers(0, 10**8))
def test_seconds_ago(seconds: int) -> None:
    assert NOW - parse_time(f"{seconds}s", NOW) == datetime.timedelta(seconds=seconds)


@given(st.datetimes(timezones=st.just(UTC), min_value=datetime.datetime(1970, 1, 2)))
def test_an_iso_time_round_trips(when: datetime.datetime) -> None:
    assert parse_time(when.isoformat().replace("+00:00", "Z"), NOW) == when
