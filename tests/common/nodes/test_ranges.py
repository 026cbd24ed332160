"""Node name ranges and addresses counted up per node."""

from __future__ import annotations

import pytest

from libs.common.errors import Invalid
from libs.common.nodes.ranges import count_up, expand_names


def test_expand_zero_padded_range() -> None:
    names = expand_names("n[001-100]")
    assert len(names) == 100
    assert names[0] == "n001"
    assert names[-1] == "n100"


def test_expand_lists_and_singles_in_order_without_duplicates() -> None:
    assert expand_names("n[1-3],m5") == ["n1", "n2", "n3", "m5"]
    assert expand_names("gpu[1,3-4],gpu1") == ["gpu1", "gpu3", "gpu4"]


def test_expand_exactly_the_limit() -> None:
    assert len(expand_names("n[1-100000]")) == 100_000


@pytest.mark.parametrize(
    ("expr", "hint"),
    [
        ("n[1-", "n[1-"),
        ("n[3-1]", "n[3-1]"),
        ("", "empty"),
        ("   ", "empty"),
        ("n[0-100000]", "100000"),
        ("a[0-99999],b[0-99999]", "more than 100000"),
        ("n_[1-2]", "n_1"),
        ("-n[1-2]", "-n1"),
        ("n[1-2].example.com", "n1.example.com"),
    ],
)
def test_bad_range_is_invalid(expr: str, hint: str) -> None:
    with pytest.raises(Invalid) as exc:
        expand_names(expr)
    assert exc.value.field == "names"
    assert hint in exc.value.message


def test_count_up_ipv4_for_twenty_nodes() -> None:
    addresses = count_up("10.10.0.11", 20)
    assert len(addresses) == 20
    assert addresses[0] == "10.10.0.11"
    assert addresses[-1] == "10.10.0.30"


def test_count_up_crosses_octets_and_handles_ipv6() -> None:
    assert count_up("10.0.0.254", 3) == ["10.0.0.254", "10.0.0.255", "10.0.1.0"]
    assert count_up("fd00::fffe", 3) == ["fd00::fffe", "fd00::ffff", "fd00::1:0"]
    assert count_up("10.0.0.1", 0) == []


def test_count_up_to_the_last_address_but_not_past_it() -> None:
    assert count_up("255.255.255.254", 2) == ["255.255.255.254", "255.255.255.255"]
    with pytest.raises(Invalid) as exc:
        count_up("255.255.255.254", 3)
    assert "IPv4" in exc.value.message
    with pytest.raises(Invalid):
        count_up("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 2)


@pytest.mark.parametrize("bad", ["10.0.0", "node1", "", "10.0.0.1/24"])
def test_count_up_refuses_non_addresses(bad: str) -> None:
    with pytest.raises(Invalid) as exc:
        count_up(bad, 3)
    assert exc.value.field == "ipaddr"
    assert repr(bad) in exc.value.message
