"""libs.common.formats.decoding: msgspec errors become Invalid naming the field, map keys
included."""

from __future__ import annotations

import msgspec
import pytest

from libs.common.errors import Invalid
from libs.common.formats.decoding import decode_json
from libs.common.models.node import Node


class Disk(msgspec.Struct, kw_only=True):
    size: int


class Host(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    disks: list[Disk] = []
    labels: dict[str, dict[str, int]] | None = None


def invalid(body: bytes, model: type = Host) -> Invalid:
    with pytest.raises(Invalid) as caught:
        decode_json(body, model)
    return caught.value


def test_map_key_is_named_not_dotted_out() -> None:
    body = b'{"network_devices": {"eth0": {"mtu": 1500}, "ib0": {"mtu": "big"}}}'
    error = invalid(body, Node)
    assert error.field == "network_devices.ib0.mtu"
    assert "got `str`" in error.message


def test_list_index_is_kept() -> None:
    error = invalid(b'{"name": "a", "disks": [{"size": 1}, {"size": "x"}]}')
    assert error.field == "disks[1].size"


def test_nested_maps_in_an_optional() -> None:
    error = invalid(b'{"name": "a", "labels": {"ok": {"x": 1}, "bad": {"y": "z"}}}')
    assert error.field == "labels.bad.y"


def test_missing_and_unknown_fields_are_named() -> None:
    assert invalid(b"{}").field == "name"
    assert invalid(b'{"name": "a", "disks": [{}]}').field == "disks[0].size"
    assert invalid(b'{"name": "a", "colour": "red"}').field == "colour"


def test_wrong_root_type_has_no_field() -> None:
    error = invalid(b"[1, 2]")
    assert error.field is None
    assert "Expected `object`, got `array`" in error.message


def test_malformed_and_empty() -> None:
    assert "not valid JSON" in invalid(b'{"name": ').message
    assert "empty" in invalid(b"  \n").message


def test_good_body_decodes() -> None:
    assert decode_json(b'{"name": "a", "disks": [{"size": 2}]}', Host).disks == [Disk(size=2)]
