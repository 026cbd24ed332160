"""Rendering overlays for nodes: files, modes and owners, the output helpers, and errors that
name the template and the line. Archives are unpacked with GNU cpio, as a node would."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from libs.common.models.node import NetDev
from services.overlayd.engine import RenderError
from services.overlayd.engine.wave_renderer import OverlayRenderer
from tests.overlayd.engine.helpers import (
    Link,
    failed,
    make_renderer,
    mode_of,
    node,
    rendered,
    unpack,
    write_overlay,
)


@pytest.fixture
def overlays(tmp_path: Path) -> Path:
    return tmp_path / "overlays"


def renderer_for(data_dir: Path, overlays: Path) -> OverlayRenderer:
    return make_renderer(data_dir, overlays)


async def test_a_template_renders_per_node_with_declared_modes_and_owners(
    data_dir: Path, overlays: Path, tmp_path: Path
) -> None:
    write_overlay(
        overlays,
        "base",
        {
            "etc/hostname.j2": "{{ node.name }}\n",
            "etc/motd": "welcome\n",
            "etc/secret.j2": "{{ node.asset_key }}\n",
            "usr/local/bin/hello": "#!/bin/sh\necho hi\n",
            "etc/localtime": Link("/usr/share/zoneinfo/UTC"),
            "var/spool/empty/.keep": "",
        },
        meta={
            "etc/secret": {"mode": "0600"},
            "usr/local/bin/hello": {"mode": "0755", "uid": 1000, "gid": 100},
            "var/spool/empty": {"mode": "0700"},
        },
    )
    renderer = renderer_for(data_dir, overlays)
    nodes = [node(f"n{i}", system=["base"], asset_key=f"key{i}") for i in (1, 2)]
    results = await renderer.render_nodes(nodes, nodes, {})
    for i in (1, 2):
        done = rendered(results[f"n{i}"])
        assert done.system_overlays == ["base"]
        root = unpack(renderer.store, done.system_digests[0], tmp_path / f"n{i}")
        assert (root / "etc/hostname").read_text() == f"n{i}\n"
        assert (root / "etc/secret").read_text() == f"key{i}\n"
        assert mode_of(root / "etc/secret") == 0o600
        assert mode_of(root / "etc/motd") == 0o644
        assert mode_of(root / "etc") == 0o755
        hello = root / "usr/local/bin/hello"
        assert mode_of(hello) == 0o755
        assert (os.stat(hello).st_uid, os.stat(hello).st_gid) == (1000, 100)
        assert mode_of(root / "var/spool/empty") == 0o700
        assert os.readlink(root / "etc/localtime") == "/usr/share/zoneinfo/UTC"
        assert not (root / "etc/hostname.j2").exists()
    assert results["n1"].system_digests != results["n2"].system_digests  # type: ignore[union-attr]


async def test_file_writes_several_outputs_and_symlink_skip_work(
    data_dir: Path, overlays: Path, tmp_path: Path
) -> None:
    write_overlay(
        overlays,
        "net",
        {
            # One template, one file per network device; the default output is dropped.
            "etc/net/ifcfg.j2": (
                "ignored preamble\n"
                "{% for name, dev in node.network_devices.items() %}\n"
                '{{ file("etc/net/ifcfg-" ~ name, mode="0600") }}\n'
                "DEVICE={{ dev.device }}\n"
                "IPADDR={{ dev.ipaddr }}\n"
                "{% endfor %}\n"
            ),
            # The default output made a symlink, plus a second symlink at its own path.
            "etc/alias.j2": (
                '{{ symlink("/etc/net/ifcfg-default") }}{{ symlink("x", "etc/other") }}'
            ),
            # A file produced only for nodes with a tag.
            "etc/gpu.conf.j2": (
                "{% if not node.get('tags', {}).get('gpu') %}{{ skip() }}{% endif %}"
                "gpus={{ node.tags.gpu }}\n"
            ),
            # file() from inside a macro: what the macro prints after it goes to that file.
            "etc/macro.j2": (
                "{% macro two(name) %}{{ file('etc/m-' ~ name) }}{{ name }} here\n{% endmacro %}"
                "{{ two('a') }}{{ two('b') }}"
            ),
        },
    )
    renderer = renderer_for(data_dir, overlays)
    devices = {
        "default": NetDev(device="eth0", ipaddr="10.0.0.5"),
        "ib": NetDev(device="ib0", ipaddr="10.1.0.5"),
    }
    gpu = node("g1", system=["net"], network_devices=devices, tags={"gpu": "4"})
    plain = node("c1", system=["net"], network_devices=devices)
    results = await renderer.render_nodes([gpu, plain], [gpu, plain], {})
    root = unpack(renderer.store, rendered(results["g1"]).system_digests[0], tmp_path / "g1")
    assert sorted(os.listdir(root / "etc/net")) == ["ifcfg-default", "ifcfg-ib"]
    assert (root / "etc/net/ifcfg-ib").read_text() == "DEVICE=ib0\nIPADDR=10.1.0.5\n"
    assert mode_of(root / "etc/net/ifcfg-default") == 0o600
    assert os.readlink(root / "etc/alias") == "/etc/net/ifcfg-default"
    assert os.readlink(root / "etc/other") == "x"
    assert (root / "etc/gpu.conf").read_text() == "gpus=4\n"
    assert (root / "etc/m-a").read_text() == "a here\n"
    assert (root / "etc/m-b").read_text() == "b here\n"
    assert not (root / "etc/macro").exists()
    other = unpack(renderer.store, rendered(results["c1"]).system_digests[0], tmp_path / "c1")
    assert not (other / "etc/gpu.conf").exists()
    assert (other / "etc/net/ifcfg-default").exists()


async def test_abort_fails_the_node_with_the_message_and_line(
    data_dir: Path, overlays: Path
) -> None:
    write_overlay(
        overlays,
        "checks",
        {
            "etc/ok": "fine\n",
            "etc/need-ip.j2": 'x\n{% if not node.get("network_devices") %}\n'
            "{{ abort('node ' ~ node.name ~ ' has no network') }}\n{% endif %}\n",
        },
    )
    renderer = renderer_for(data_dir, overlays)
    bad = node("bad", system=["checks"])
    good = node("good", system=["checks"], ip="10.0.0.9")
    results = await renderer.render_nodes([bad, good], [bad, good], {})
    error = failed(results["bad"])
    assert (error.overlay, error.template, error.line) == ("checks", "etc/need-ip.j2", 3)
    assert error.message == "abort: node bad has no network"
    assert error.event("bad").line == 3
    rendered(results["good"])


@pytest.mark.parametrize(
    ("source", "line", "message"),
    [
        ("a\nb\n{{ node.nosuchfield }}\n", 3, "has no attribute 'nosuchfield'"),
        ("ok\n{{ missing_variable }}\n", 2, "'missing_variable' is undefined"),
        ("one\ntwo\n{% if %}\n", 3, "syntax error"),
        ("{% for x in nodes %}\n{{ 1 / 0 }}\n{% endfor %}\n", 2, "ZeroDivisionError"),
        ('{{ file("../../etc/passwd") }}\n', 1, "leaves the overlay"),
        ('{{ file("etc/x", mode="999") }}\n', 1, "not an octal file mode"),
        ("{% set x = file('etc/y') %}\n", None, "never printed"),
        ('{{ "10.0.0.300" | ipv4_network("255.0.0.0") }}', 1, "not an IPv4 address"),
    ],
)
async def test_a_broken_template_is_a_render_error_at_its_line(
    data_dir: Path, overlays: Path, source: str, line: int | None, message: str
) -> None:
    write_overlay(overlays, "broken", {"etc/fine": "x\n", "etc/t.j2": source})
    renderer = renderer_for(data_dir, overlays)
    n = node("n1", system=["broken"])
    error = failed((await renderer.render_nodes([n], [n], {}))["n1"])
    assert error.overlay == "broken"
    assert error.template == "etc/t.j2"
    assert error.line == line
    assert message in error.message
    assert "broken/etc/t.j2" in str(error)


async def test_an_error_inside_an_include_names_the_included_template(
    data_dir: Path, overlays: Path
) -> None:
    write_overlay(
        overlays,
        "inc",
        {
            "lib/common.inc": "# common\n{{ node.name }}\n{{ node.undefined_thing }}\n",
            "etc/main.j2": "head\n{% include 'lib/common.inc' %}\n",
            "etc/good.j2": "{% include '/lib/ok.inc' %}",
            "lib/ok.inc": "included {{ node.name }}\n",
        },
    )
    renderer = renderer_for(data_dir, overlays)
    n = node("n1", system=["inc"])
    error = failed((await renderer.render_nodes([n], [n], {}))["n1"])
    assert (error.template, error.line) == ("lib/common.inc", 3)


async def test_two_outputs_for_one_path_are_an_error(data_dir: Path, overlays: Path) -> None:
    write_overlay(overlays, "dup", {"etc/hosts": "static\n", "etc/hosts.j2": "templated\n"})
    renderer = renderer_for(data_dir, overlays)
    n = node("n1", system=["dup"])
    error = failed((await renderer.render_nodes([n], [n], {}))["n1"])
    assert "etc/hosts is written twice" in error.message


async def test_a_missing_overlay_fails_only_its_nodes(data_dir: Path, overlays: Path) -> None:
    write_overlay(overlays, "base", {"etc/hostname.j2": "{{ node.name }}\n"})
    renderer = renderer_for(data_dir, overlays)
    a = node("a", system=["base", "nope"])
    b = node("b", system=["base"], runtime=["base"])
    results = await renderer.render_nodes([a, b], [a, b], {})
    error = failed(results["a"])
    assert (error.overlay, error.template, error.line) == ("nope", None, None)
    assert "does not exist" in error.message
    assert rendered(results["b"]).runtime_digest


async def test_render_files_shows_an_overlay_for_a_node(data_dir: Path, overlays: Path) -> None:
    write_overlay(overlays, "base", {"etc/hostname.j2": "{{ node.name }}\n"})
    renderer = renderer_for(data_dir, overlays)
    n = node("n7", system=["base"])
    members = await renderer.render_files(n, "base", [n], {})
    assert [(m.path, m.data) for m in members] == [("etc", b""), ("etc/hostname", b"n7\n")]
    with pytest.raises(RenderError, match="does not exist"):
        await renderer.render_files(n, "nope", [n], {})
