"""Options generated from the model: one per flagged field; patches hold only what was given."""

from __future__ import annotations

from typing import Annotated, Any

import click
import msgspec
import pytest
from click.testing import CliRunner

from libs.common.models.api import BulkAdd
from libs.common.models.fields import field_extras, meta
from libs.common.models.node import IPMI, Kernel, NetDev, Node, Profile
from libs.common.nodes.mergepatch import apply_merge_patch
from libs.wolfctl.flags import model_flags, set_options
from libs.wolfctl.main import cli
from libs.wolfctl.node.add import FLAGS as NODE_FLAGS
from libs.wolfctl.node.add import bulk_body
from libs.wolfctl.node.add import command as node_add
from libs.wolfctl.node.set import command as node_set
from libs.wolfctl.node.unset import command as node_unset
from libs.wolfctl.patches import set_patch, unset_patch
from libs.wolfctl.profile.set import command as profile_set
from libs.wolfctl.verbs import explicit_selectors


def declared_flags(model: type[msgspec.Struct]) -> dict[str, str | None]:
    """flag -> short, read straight from the model and the sub-structs it holds."""
    out: dict[str, str | None] = {}
    for cls in (model, Kernel, IPMI, NetDev):
        for extra in field_extras(cls).values():
            if "flag" in extra:
                out[extra["flag"]] = extra.get("short")
    return out


def options_of(command: click.Command) -> dict[str, click.Option]:
    return {name: p for p in command.params if isinstance(p, click.Option) for name in p.opts}


@pytest.mark.parametrize(
    ("model", "command"), [(Node, node_set), (Profile, profile_set)], ids=["node", "profile"]
)
def test_every_flagged_field_has_an_option(model: type, command: click.Command) -> None:
    opts = options_of(command)
    declared = declared_flags(model)
    assert declared, "the model declares flags"
    for flag, short in declared.items():
        assert f"--{flag}" in opts, flag
        if short:
            assert f"-{short}" in opts and opts[f"-{short}"] is opts[f"--{flag}"], short


def test_node_only_flags_are_not_profile_flags() -> None:
    opts = options_of(profile_set)
    assert "--discoverable" not in opts and "--asset" not in opts
    assert "--discoverable" in options_of(node_set)


def test_unset_has_every_flag_as_a_boolean() -> None:
    opts = options_of(node_unset)
    for flag in declared_flags(Node):
        assert opts[f"--{flag}"].is_flag, flag


def parse(command: click.Command, args: list[str]) -> dict[str, Any]:
    """The keyword arguments click would call the verb with."""
    return command.make_context(command.name or "", args).params


def test_set_patch_holds_only_the_given_flags() -> None:
    params = parse(node_set, ["n01", "--image", "rocky9", "-A", "quiet,nosplash", "-e", "yes"])
    assert set_patch(NODE_FLAGS, params) == {
        "image": "rocky9",
        "kernel": {"args": ["quiet", "nosplash"]},
        "discoverable": True,
    }


def test_lists_are_comma_separated_and_repeatable() -> None:
    params = parse(
        node_set, ["n01", "--system-overlays", "wwinit,hostname", "-O", "ssh", "-P", "a, b"]
    )
    assert set_patch(NODE_FLAGS, params) == {
        "system_overlay": ["wwinit", "hostname", "ssh"],
        "profiles": ["a", "b"],
    }


@pytest.mark.parametrize(("word", "value"), [("yes", True), ("no", False), ("true", True)])
def test_booleans_take_words(word: str, value: bool) -> None:
    params = parse(node_set, ["n01", "--onboot", word, "--ipmiwrite", word])
    assert set_patch(NODE_FLAGS, params) == {
        "network_devices": {"default": {"onboot": value}},
        "ipmi": {"write": value},
    }


def test_int_fields_take_ints_only() -> None:
    params = parse(node_set, ["n01", "--mtu", "9000"])
    assert set_patch(NODE_FLAGS, params) == {"network_devices": {"default": {"mtu": 9000}}}
    result = CliRunner().invoke(
        cli, ["--url", "http://127.0.0.1:9", "node", "set", "n01", "--mtu", "big"]
    )
    assert result.exit_code == 2
    assert "'big' is not a valid integer" in result.output


def test_net_flags_go_to_the_device_named_by_netname() -> None:
    params = parse(
        node_set,
        ["n01", "--netname", "ib", "-I", "10.1.0.5", "-N", "ib0", "--nettagadd", "speed=100"],
    )
    assert set_patch(NODE_FLAGS, params) == {
        "network_devices": {"ib": {"ipaddr": "10.1.0.5", "device": "ib0", "tags": {"speed": "100"}}}
    }


def test_tags_add_and_delete() -> None:
    params = parse(
        node_set,
        [
            "n01",
            "--tagadd",
            "rack=1,row=a",
            "--tagadd",
            "u=7",
            "--tagdel",
            "old",
            "--ipmitagadd",
            "k=v",
            "--ipmitagdel",
            "x",
            "--nettagdel",
            "y",
        ],
    )
    assert set_patch(NODE_FLAGS, params) == {
        "tags": {"rack": "1", "row": "a", "u": "7", "old": None},
        "ipmi": {"tags": {"k": "v", "x": None}},
        "network_devices": {"default": {"tags": {"y": None}}},
    }


def test_a_tag_without_a_value_is_a_usage_error() -> None:
    params = parse(node_set, ["n01", "--tagadd", "novalue"])
    with pytest.raises(click.BadParameter, match="not KEY=VALUE"):
        set_patch(NODE_FLAGS, params)


def test_set_without_flags_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["--url", "http://127.0.0.1:9", "node", "set", "n01"])
    assert result.exit_code == 2
    assert "nothing to set" in result.output


def test_unset_sends_nulls() -> None:
    params = parse(node_unset, ["n01", "--image", "--kernelargs", "--ipaddr", "--ipmipass"])
    patch = unset_patch(NODE_FLAGS, params)
    assert patch == {
        "image": None,
        "kernel": {"args": None},
        "network_devices": {"default": {"ipaddr": None}},
        "ipmi": {"password": None},
    }
    stored = {
        "image": "rocky9",
        "kernel": {"args": ["quiet"], "version": "6.1"},
        "network_devices": {"default": {"ipaddr": "10.0.0.1", "hwaddr": "aa"}},
    }
    assert apply_merge_patch(stored, patch) == {
        "kernel": {"version": "6.1"},
        "network_devices": {"default": {"hwaddr": "aa"}},
        "ipmi": {},
    }


def test_unset_netname_alone_removes_the_device() -> None:
    ctx = node_unset.make_context("unset", ["n01", "--netname", "ib"])
    explicit = explicit_selectors(ctx, NODE_FLAGS)
    assert explicit == ["net"]
    assert unset_patch(NODE_FLAGS, ctx.params, explicit) == {"network_devices": {"ib": None}}
    # With a field of its scope, only that field goes.
    ctx = node_unset.make_context("unset", ["n01", "--netname", "ib", "--mtu"])
    patch = unset_patch(NODE_FLAGS, ctx.params, explicit_selectors(ctx, NODE_FLAGS))
    assert patch == {"network_devices": {"ib": {"mtu": None}}}
    # The default netname is not a request to remove the default device.
    ctx = node_unset.make_context("unset", ["n01", "--image"])
    assert explicit_selectors(ctx, NODE_FLAGS) == []


def test_unset_tags() -> None:
    params = parse(node_unset, ["n01", "--tag", "a,b", "--nettag", "c"])
    assert unset_patch(NODE_FLAGS, params) == {
        "tags": {"a": None, "b": None},
        "network_devices": {"default": {"tags": {"c": None}}},
    }


def test_bulk_add_moves_the_counted_addresses_to_the_top() -> None:
    params = parse(
        node_add,
        [
            "n[01-10]",
            "-I",
            "10.0.0.1",
            "-M",
            "255.255.255.0",
            "--ipmiaddr",
            "10.1.0.1",
            "--netname",
            "eth",
            "-P",
            "compute",
        ],
    )
    body = bulk_body(NODE_FLAGS, "n[01-10]", params)
    assert body == {
        "names": "n[01-10]",
        "netname": "eth",
        "ipaddr": "10.0.0.1",
        "ipmiaddr": "10.1.0.1",
        "profiles": ["compute"],
        "network_devices": {"eth": {"netmask": "255.255.255.0"}},
    }
    msgspec.convert(body, BulkAdd)  # a body the registry can decode


def test_bulk_add_without_net_flags_has_no_device() -> None:
    body = bulk_body(NODE_FLAGS, "n1", parse(node_add, ["n1", "-I", "10.0.0.9"]))
    assert body == {"names": "n1", "netname": "default", "ipaddr": "10.0.0.9"}


class Rack(msgspec.Struct, kw_only=True):
    slot: Annotated[int | None, meta("slot in the rack", flag="rackslot", scope="rack")] = None


class Bigger(Node, kw_only=True):
    """Node with fields added later: a plain one and a map selected by a new scope."""

    colour: Annotated[str | None, meta("paint", flag="colour", short="C")] = None
    racks: Annotated[dict[str, Rack], meta("racks")] = msgspec.field(default_factory=dict)


class Odd(msgspec.Struct):
    when: Annotated[dict[str, int], meta("odd", flag="odd")] = msgspec.field(default_factory=dict)


def test_a_field_added_to_the_model_gets_its_flag() -> None:
    flags = model_flags(Bigger)

    @click.command()
    @set_options(flags)
    def probe(**params: Any) -> None:
        click.echo(msgspec.json.encode(set_patch(flags, params)))

    result = CliRunner().invoke(
        probe, ["-C", "red", "--rackslot", "4", "--rackname", "r2", "--image", "x"]
    )
    assert result.exit_code == 0, result.output
    assert msgspec.json.decode(result.output) == {
        "colour": "red",
        "racks": {"r2": {"slot": 4}},
        "image": "x",
    }


def test_a_field_of_an_unsupported_type_fails_loudly() -> None:
    with pytest.raises(TypeError, match="cannot make a flag"):
        model_flags(Odd)
