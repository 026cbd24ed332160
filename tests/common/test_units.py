"""Durations and sizes as written on a command line or in an environment variable, and as
shown back (libs/common/units.py): every unit, compound durations, bad text refused with a
message naming it, and what is shown parses back to the same value."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.common.errors import Invalid
from libs.common.units import (
    DURATION_UNITS,
    SIZE_UNITS,
    parse_duration,
    parse_size,
    show_duration,
    show_size,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        ("90s", 90),
        ("10m", 600),
        ("2h", 7200),
        ("7d", 604800),
        ("2w", 1209600),
        ("1.5h", 5400),
        (".5m", 30),
        ("1h30m", 5400),
        ("1d 12h", 129600),
        (" 7D ", 604800),
        ("0", 0),
        ("0s", 0),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "not a duration"),
        ("m", "not a duration"),
        ("-5m", "not a duration"),
        ("5x", "unknown unit 'x'"),
        ("7 days", "unknown unit 'days'"),
        ("1h 30", "30 wants a unit"),
        ("1.5.3", "wants a unit"),
        ("5 5", "wants a unit"),
        ("1e3d", "unknown unit 'e'"),
        ("1" + "0" * 400 + "d", "too long a duration"),
    ],
)
def test_bad_durations_are_refused_naming_the_text(text: str, says: str) -> None:
    with pytest.raises(Invalid) as err:
        parse_duration(text)
    assert says in err.value.message and repr(text) in err.value.message


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("4096", 4096),
        ("1B", 1),
        ("1K", 1000),
        ("1KB", 1000),
        ("1Ki", 1024),
        ("1KiB", 1024),
        ("64kib", 65536),
        ("500MB", 500_000_000),
        ("512MiB", 512 * 1024**2),
        ("1G", 10**9),
        ("1GiB", 1024**3),
        ("1.5GiB", 3 * 512 * 1024**2),
        ("2TiB", 2 * 1024**4),
        ("1 GiB", 1024**3),
        ("0", 0),
    ],
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "not a size"),
        ("GiB", "not a size"),
        ("-1GiB", "not a size"),
        ("1PiB", "not a size"),
        ("1GiBs", "not a size"),
        ("0.1KiB", "not a whole number of bytes"),
    ],
)
def test_bad_sizes_are_refused_naming_the_text(text: str, says: str) -> None:
    with pytest.raises(Invalid) as err:
        parse_size(text)
    assert says in err.value.message and repr(text) in err.value.message


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(604800, "7 days"), (86400, "1 day"), (5400, "1.5 hours"), (60, "1 minute"), (1, "1 second"),
     (3601, "3601 seconds"), (0.25, "0.25 seconds")],
)  # fmt: skip
def test_durations_shown(seconds: float, shown: str) -> None:
    assert show_duration(seconds) == shown


@pytest.mark.parametrize(
    ("size", "shown"),
    [(1024**3, "1 GiB"), (1536, "1.5 KiB"), (65536, "64 KiB"), (1000, "1000 bytes"),
     (1, "1 byte"), (5 * 1024**4, "5 TiB")],
)  # fmt: skip
def test_sizes_shown(size: int, shown: str) -> None:
    assert show_size(size) == shown


@given(st.integers(0, 10**6), st.sampled_from(sorted(DURATION_UNITS)))
def test_a_whole_number_of_any_unit(count: int, unit: str) -> None:
    assert parse_duration(f"{count}{unit}") == count * DURATION_UNITS[unit]


@given(st.lists(st.tuples(st.integers(0, 1000), st.sampled_from("smhdw")), min_size=1, max_size=5))
def test_compound_durations_add_up(parts: list[tuple[int, str]]) -> None:
    text = "".join(f"{n}{unit}" for n, unit in parts)
    assert parse_duration(text) == sum(n * DURATION_UNITS[unit] for n, unit in parts)


@given(st.integers(0, 10**9), st.sampled_from(sorted(SIZE_UNITS)), st.booleans())
def test_a_whole_number_of_any_size_unit(count: int, unit: str, with_b: bool) -> None:
    text = f"{count}{unit.upper() if len(unit) == 1 else unit.capitalize()}{'B' if with_b else ''}"
    assert parse_size(text) == count * SIZE_UNITS[unit]


@given(st.integers(1, 10**7))
def test_a_shown_duration_means_what_it_shows(seconds: int) -> None:
    count, word = show_duration(seconds).split()
    scale = {"day": 86400, "hour": 3600, "minute": 60, "second": 1}[word.rstrip("s")]
    assert float(count) * scale == pytest.approx(seconds)


@given(st.integers(1, 2**50))
def test_a_shown_size_parses_back(size: int) -> None:
    count, unit = show_size(size).split()
    back = parse_size(count + ("" if unit.startswith("byte") else unit))
    assert back == size
