"""Shipped overlay trees: entries, `.meta.json` ownership, revisions, what the templates read."""

from __future__ import annotations

from pathlib import Path

import pytest

from libs.common.errors import Invalid
from services.overlayd.engine.compiled_overlay import CompiledOverlay
from services.overlayd.engine.sources import ShippedOverlays, load_tree
from tests.overlayd.engine.helpers import (
    DATA,
    Link,
    make_renderer,
    node,
    rendered,
    unpack,
    write_overlay,
)


def test_a_shipped_tree_keeps_files_dirs_links_and_declared_modes(tmp_path: Path) -> None:
    folder = write_overlay(
        tmp_path,
        "ssh",
        {
            "etc/ssh/key.j2": "{{ keys.rsa.private }}",
            "etc/ssh/config": "Port 22\n",
            "etc/ssh/alias": Link("config"),
        },
        meta={
            "etc/ssh/key": {"mode": "0600"},  # a template named by its output path
            "etc/ssh": {"mode": "0700", "uid": 0, "gid": 0},
            "etc/ssh/generated": {"mode": "0640", "gid": 42},  # written by file()
        },
    )
    tree = load_tree(folder, "ssh")
    assert tree.origin == "shipped"
    assert set(tree.entries) == {
        "etc",
        "etc/ssh",
        "etc/ssh/key.j2",
        "etc/ssh/config",
        "etc/ssh/alias",
    }
    assert tree.entries["etc/ssh/key.j2"].mode == 0o600
    assert tree.entries["etc/ssh"].mode == 0o700
    assert tree.entries["etc/ssh/config"].mode == 0o644
    assert tree.entries["etc"].mode == 0o755
    assert tree.entries["etc/ssh/alias"].kind == "symlink"
    assert tree.entries["etc/ssh/alias"].target == "config"
    assert set(tree.declared) == {"etc/ssh/generated"}
    assert tree.declared["etc/ssh/generated"].gid == 42
    assert load_tree(folder, "ssh").revision == tree.revision
    (folder / "etc/ssh/config").write_text("Port 2222\n")
    assert load_tree(folder, "ssh").revision != tree.revision


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ('{"etc/x": {"mode": 420}}', "octal string"),
        ('{"etc/x": {"mode": "0999"}}', "not an octal file mode"),
        ('{"../x": {"mode": "0644"}}', "leaves the overlay"),
        ('{"etc/x": {"owner": "root"}}', "mode, uid and/or gid"),
        ('{"etc/x": {"uid": -1}}', "uid and gid must be numbers"),
        ("[1, 2]", "must be an object"),
        ("{not json", "not valid JSON"),
    ],
)
def test_a_bad_meta_file_is_refused_with_a_reason(tmp_path: Path, meta: str, message: str) -> None:
    folder = write_overlay(tmp_path, "bad", {"etc/x": "x\n"})
    (folder / ".meta.json").write_text(meta)
    with pytest.raises(Invalid, match=message):
        load_tree(folder, "bad")


async def test_file_outputs_get_the_modes_meta_declares(data_dir: Path, tmp_path: Path) -> None:
    overlays = tmp_path / "overlays"
    write_overlay(
        overlays,
        "gen",
        {"etc/gen.j2": "{{ file('etc/a') }}a\n{{ file('etc/b', mode='0700') }}b\n"},
        meta={"etc/a": {"mode": "0640", "gid": 42}, "etc/gen.j2": {"mode": "0600"}},
    )
    renderer = make_renderer(data_dir, overlays)
    n = node("n1", system=["gen"])
    members = {m.path: m for m in await renderer.render_files(n, "gen", [n], {})}
    assert (members["etc/a"].mode & 0o7777, members["etc/a"].gid) == (0o640, 42)
    assert members["etc/b"].mode & 0o7777 == 0o700


@pytest.mark.parametrize(
    ("files", "reads"),
    [
        ({"etc/hostname.j2": "{{ node.name }}"}, {"node"}),
        ({"etc/hosts.j2": "{% for n in nodes %}{{ n.name }}{% endfor %}"}, {"nodes"}),
        ({"etc/x.j2": "{{ settings.ip }} {{ keys.rsa.public }}"}, {"settings", "keys"}),
        ({"etc/x.j2": "{{ include_image('etc/passwd') }}"}, {"include_image"}),
        ({"etc/x.j2": "{% set node = 1 %}{{ node }}"}, set()),
        ({"etc/x.j2": "{% include 'lib/a.inc' %}", "lib/a.inc": "{{ image.name }}"}, {"image"}),
        ({"etc/x.j2": "{% include node.name %}"}, {"node", "nodes", "settings", "image"}),
        ({"etc/static": "{{ node.name }}"}, set()),  # not a template: copied as is
    ],
)
def test_what_an_overlay_reads_is_worked_out_once(
    tmp_path: Path, files: dict[str, str], reads: set[str]
) -> None:
    compiled = CompiledOverlay(load_tree(write_overlay(tmp_path, "o", files), "o"))
    assert reads <= compiled.reads
    if "nodes" not in reads:
        assert compiled.reads == reads


def test_the_shipped_overlays_folder_lists_valid_names(tmp_path: Path) -> None:
    write_overlay(tmp_path, "hosts", {"etc/hosts.j2": ""})
    write_overlay(tmp_path, "ssh.host_keys", {"etc/x": ""})
    (tmp_path / "not a name").mkdir()
    shipped = ShippedOverlays(tmp_path)
    assert shipped.names() == ["hosts", "ssh.host_keys"]
    assert shipped.get("nope") is None
    assert shipped.get("../etc") is None
    hosts = shipped.get("hosts")
    assert hosts is not None and shipped.get("hosts") is hosts  # read once


async def test_the_standin_set_renders_for_a_node_with_two_interfaces(
    data_dir: Path, tmp_path: Path
) -> None:
    from libs.common.models.node import NetDev

    renderer = make_renderer(data_dir, DATA / "standin")
    overlays = sorted(p.name for p in (DATA / "standin").iterdir())
    devices = {
        "default": NetDev(
            device="eth0", hwaddr="52:54:00:00:00:01", ipaddr="10.0.0.5", netmask="255.255.0.0"
        ),
        "ib": NetDev(device="ib0", type="infiniband", ipaddr="10.2.0.5", netmask="255.255.0.0"),
    }
    n = node("n1", system=overlays, network_devices=devices)
    done = rendered((await renderer.render_nodes([n], [n], {}))["n1"])
    folder = tmp_path / "n1"
    for digest in done.system_digests:
        unpack(renderer.store, digest, folder)
    assert (folder / "etc/hostname").read_text() == "n1\n"
    assert "IPADDR=10.2.0.5" in (folder / "etc/sysconfig/network-scripts/ifcfg-ib").read_text()
    connection = folder / "etc/NetworkManager/system-connections/warewulf-default.nmconnection"
    assert "address=10.0.0.5/16" in connection.read_text()
    assert (folder / "init").stat().st_mode & 0o111
