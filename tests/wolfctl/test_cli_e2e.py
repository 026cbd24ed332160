"""wolfctl against a real registry, run as a user runs it: a process, its output, its exit code.

The `registry` fixture (tests/conftest.py) yields an object with `.url` and `.token` of a
running, empty registry. Each call here starts wolfctl afresh (tests/cli.py).
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import msgspec
import yaml

from libs.common.models.api import MergedNode
from libs.common.models.node import Node, Profile
from tests.cli import run_cli_async


async def wolfctl(
    registry: Any, cmd: str, *extra: str, stdin: str = "", token: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `wolfctl CMD EXTRA...` (CMD split as a shell would) in a fresh process, finding the
    registry through the environment."""
    env = {
        "WOLFPACK_URL": registry.url,
        "WOLFPACK_TOKEN": registry.token if token is None else token,
    }
    return await run_cli_async("wolfctl", *shlex.split(cmd), *extra, env=env, stdin=stdin)


async def ok(registry: Any, cmd: str, *extra: str, stdin: str = "") -> str:
    result = await wolfctl(registry, cmd, *extra, stdin=stdin)
    assert result.returncode == 0, f"wolfctl {cmd} {' '.join(extra)}: {result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stdout


async def nodes(registry: Any, *ranges: str) -> dict[str, Node]:
    out = await ok(registry, "-o json node list", *ranges)
    return {n.name: n for n in msgspec.json.decode(out, type=list[Node])}


async def merged(registry: Any, name: str) -> MergedNode:
    out = await ok(registry, "node list -a -o json", name)
    (found,) = msgspec.json.decode(out, type=list[MergedNode])
    return found


def rows(table: str) -> list[list[str]]:
    """Table body (after the header and its underline), cells split at runs of 2+ blanks."""
    return [re.split(r" {2,}", line) for line in table.splitlines()[2:]]


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("wolfctl: error: ")
    return lines[0]


async def test_add_profile_and_range_then_list(registry: Any) -> None:
    await ok(
        registry, 'profile add compute --image rocky9 -O wwinit,hostname --comment "compute nodes"'
    )
    await ok(registry, "node add n[01-03] -P compute -I 10.0.0.1 -M 255.255.255.0")

    table = await ok(registry, "node list")
    assert table.splitlines()[0].split("  ")[0] == "NODE NAME"
    assert rows(table) == [
        ["n01", "compute", "10.0.0.1"],
        ["n02", "compute", "10.0.0.2"],
        ["n03", "compute", "10.0.0.3"],
    ]
    stored = await nodes(registry)
    assert stored["n02"].network_devices["default"].netmask == "255.255.255.0"

    profiles = await ok(registry, "profile list")
    assert rows(profiles) == [["compute", "compute nodes"]]
    out = await ok(registry, "profile list -o yaml")
    (profile,) = msgspec.convert(yaml.safe_load(out), list[Profile])
    assert profile.system_overlay == ["wwinit", "hostname"]

    # The long and network tables show what the node boots with, inherited values included.
    long_rows = rows(await ok(registry, "node list -l n01"))
    assert long_rows == [["n01", "--", "rocky9", "wwinit,hostname/"]]
    net_rows = rows(await ok(registry, "node list -n n[02-03]"))
    assert net_rows == [
        ["n02", "default", "--", "10.0.0.2", "--", "--"],
        ["n03", "default", "--", "10.0.0.3", "--", "--"],
    ]


async def test_set_changes_only_the_flags_given(registry: Any) -> None:
    await ok(registry, "node add n1 --image a --comment keep -I 10.0.0.9")
    await ok(
        registry,
        "node set n1 --image b --netname ib -I 10.1.0.9 -N ib0 --mtu 2044 --tagadd rack=r1,row=2",
    )
    n1 = (await nodes(registry))["n1"]
    assert (n1.image, n1.comment, n1.tags) == ("b", "keep", {"rack": "r1", "row": "2"})
    assert n1.network_devices["default"].ipaddr == "10.0.0.9"
    ib = n1.network_devices["ib"]
    assert (ib.ipaddr, ib.device, ib.mtu) == ("10.1.0.9", "ib0", 2044)

    await ok(registry, "node set n1 --tagdel rack -O wwinit,ssh")
    n1 = (await nodes(registry))["n1"]
    assert n1.tags == {"row": "2"}
    assert n1.system_overlay == ["wwinit", "ssh"]


async def test_set_on_a_range_reports_each_failed_node(registry: Any) -> None:
    await ok(registry, "node add n[01-03]")
    result = await wolfctl(registry, "node set n[01-05] --comment racked")
    assert result.returncode == 1
    failed = result.stderr.splitlines()
    assert [line.split(":")[2].strip() for line in failed] == ["n04", "n05"]
    assert all(line.startswith("wolfctl: error: n0") for line in failed)
    assert {n.comment for n in (await nodes(registry)).values()} == {"racked"}


async def test_bad_value_is_one_line_naming_node_and_field(registry: Any) -> None:
    await ok(registry, "node add n07")
    line = one_error_line(await wolfctl(registry, "node set n07 --hwaddr zz"))
    assert line.startswith("wolfctl: error: n07: ")
    assert "hwaddr" in line
    assert (await nodes(registry))["n07"].network_devices == {}


async def test_usage_errors_exit_2(registry: Any) -> None:
    result = await wolfctl(registry, "node set n1 --mtu big")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    result = await wolfctl(registry, "node set n1")
    assert result.returncode == 2 and "nothing to set" in result.stderr


async def test_unset_goes_back_to_the_inherited_value(registry: Any) -> None:
    await ok(registry, "profile add base --image rocky9 --kernelargs quiet")
    await ok(registry, "node add n1 -P base --image custom -A debug")
    view = await merged(registry, "n1")
    assert view.node.image == "custom" and view.provenance["image"] == "n1"

    await ok(registry, "node unset n1 --image --kernelargs")
    n1 = (await nodes(registry))["n1"]
    assert n1.image is None and (n1.kernel is None or n1.kernel.args == [])
    view = await merged(registry, "n1")
    assert view.node.image == "rocky9" and view.provenance["image"] == "base"

    table = await ok(registry, "node list -a n1")
    assert ["n1", "image", "base", "rocky9"] in rows(table)


async def test_unset_netname_alone_removes_the_device(registry: Any) -> None:
    await ok(registry, "node add n1 --netname ib -I 10.1.0.1 -N ib0")
    await ok(registry, "node set n1 -I 10.0.0.1")
    await ok(registry, "node unset n1 --netname ib")
    assert set((await nodes(registry))["n1"].network_devices) == {"default"}


async def test_secrets_are_masked_unless_asked_for(registry: Any) -> None:
    await ok(registry, "node add n1 --ipmiuser admin --ipmipass hunter2 --ipmiaddr 10.9.0.1")
    table = await ok(registry, "node list -a")
    assert "hunter2" not in table
    assert ["n1", "ipmi.password", "n1", "********"] in rows(table)
    assert rows(await ok(registry, "node list -i")) == [["n1", "10.9.0.1", "--", "admin", "--"]]
    for fmt in ("json", "yaml"):
        assert "hunter2" not in await ok(registry, f"-o {fmt} node list")
        assert "hunter2" not in await ok(registry, f"-o {fmt} node list -a")
    assert (await nodes(registry))["n1"].ipmi.password == "********"  # type: ignore[union-attr]
    shown = await ok(registry, "-o json node list --secrets n1")
    assert msgspec.json.decode(shown, type=list[Node])[0].ipmi.password == "hunter2"  # type: ignore[union-attr]
    assert ["n1", "ipmi.password", "n1", "hunter2"] in rows(
        await ok(registry, "node list -a --secrets")
    )
    # Without the token, no secret: the registry refuses rather than masks.
    refused = await wolfctl(registry, "node list --secrets", token="wrong")
    assert refused.returncode != 0 and "hunter2" not in refused.stdout


async def test_a_secret_flag_of_dash_reads_the_value_from_stdin(registry: Any) -> None:
    """`--ipmipass -` keeps the password out of `ps` and the shell's history."""
    await ok(registry, "node add n1 --ipmiuser admin --ipmipass - --asset -", stdin="pw 1\nkey-1\n")
    await ok(registry, "profile add p1 --ipmipass -", stdin="pw-2\r\n")
    shown = msgspec.json.decode(
        await ok(registry, "-o json node list --secrets n1"), type=list[Node]
    )
    assert shown[0].ipmi is not None and shown[0].ipmi.password == "pw 1"
    assert shown[0].asset_key == "key-1"
    profile = await ok(registry, "-o json profile list --secrets p1")
    assert '"pw-2"' in profile
    # No line to read: refused, naming the flag, and nothing changed.
    refused = await wolfctl(registry, "node set n1 --ipmipass -", stdin="")
    assert refused.returncode == 2 and "--ipmipass" in refused.stderr, refused.stderr
    empty = await wolfctl(registry, "node set n1 --ipmipass -", stdin="\n")
    assert empty.returncode == 2 and "empty line" in empty.stderr, empty.stderr
    again = msgspec.json.decode(
        await ok(registry, "-o json node list --secrets n1"), type=list[Node]
    )
    assert again[0].ipmi is not None and again[0].ipmi.password == "pw 1"


async def test_delete_asks_first_unless_yes(registry: Any) -> None:
    await ok(registry, "node add n[1-3]")
    refused = await wolfctl(registry, "node delete n[1-2]", stdin="n\n")
    assert refused.returncode == 1
    assert "Delete 2 nodes (n[1-2])?" in refused.stderr
    assert set(await nodes(registry)) == {"n1", "n2", "n3"}

    await ok(registry, "node delete n[1-2]", stdin="y\n")
    assert set(await nodes(registry)) == {"n3"}
    await ok(registry, "node rm --yes n3")
    assert await nodes(registry) == {}


async def test_adding_what_exists_is_a_conflict(registry: Any) -> None:
    await ok(registry, "node add n[1-2]")
    one_error_line(await wolfctl(registry, "node add n[2-3]"))
    assert set(await nodes(registry)) == {"n1", "n2"}  # nothing created

    await ok(registry, "profile add gpu --comment first")
    one_error_line(await wolfctl(registry, "profile add gpu --comment second"))
    out = await ok(registry, "-o json profile list gpu")
    assert msgspec.json.decode(out, type=list[Profile])[0].comment == "first"


async def test_profile_set_unset_delete(registry: Any) -> None:
    await ok(registry, "profile add p1")
    await ok(registry, "profile set p1 --comment hello --ipmiuser root --ipmitagadd vendor=x")
    out = await ok(registry, "profile list -o json")
    (p1,) = msgspec.json.decode(out, type=list[Profile])
    assert p1.comment == "hello" and p1.ipmi is not None
    assert (p1.ipmi.username, p1.ipmi.tags) == ("root", {"vendor": "x"})

    await ok(registry, "profile unset p1 --comment --ipmitag vendor")
    (p1,) = msgspec.json.decode(await ok(registry, "profile list -o json"), type=list[Profile])
    assert p1.comment is None and p1.ipmi is not None and p1.ipmi.tags == {}

    await ok(registry, "profile delete -y p1")
    assert rows(await ok(registry, "profile list")) == []


async def test_import_then_export(registry: Any, tmp_path: Path) -> None:
    conf = tmp_path / "nodes.conf"
    conf.write_text(
        "nodeprofiles:\n"
        "  default:\n"
        "    comment: imported\n"
        "    image name: rocky9\n"
        "nodes:\n"
        "  c1:\n"
        "    profiles: [default]\n"
        "    network devices:\n"
        "      default:\n"
        "        hwaddr: aa:bb:cc:dd:ee:01\n"
        "        ipaddr: 10.0.0.1\n"
    )
    await ok(registry, "node import", str(conf))
    c1 = (await nodes(registry))["c1"]
    assert c1.network_devices["default"].hwaddr == "aa:bb:cc:dd:ee:01"

    exported = tmp_path / "out.conf"
    await ok(registry, "node export -f", str(exported))
    doc = yaml.safe_load(exported.read_text())
    assert doc["nodeprofiles"]["default"]["image name"] == "rocky9"
    assert doc["nodes"]["c1"]["network devices"]["default"]["ipaddr"] == "10.0.0.1"
    assert await ok(registry, "node export") == exported.read_text()


async def test_wrong_token_is_one_clear_line(registry: Any) -> None:
    result = await wolfctl(registry, "node add n1", token="not-the-token")
    one_error_line(result)
    assert await nodes(registry) == {}


async def test_ten_thousand_nodes_are_listed(registry: Any) -> None:
    # How fast: bench/registry.py times this listing (a whole wolfctl run) against its goal.
    await ok(registry, "profile add default")
    await ok(registry, "node add n[00001-10000] -P default -I 10.0.0.1")
    lines = (await ok(registry, "node list")).splitlines()
    assert len(lines) == 10_002
    assert lines[-1].split() == ["n10000", "default", "10.0.39.16"]
