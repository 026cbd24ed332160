"""Hostile templates: every attempt to leave the sandbox, read what they may not, or exhaust the
server is a RenderError naming the template and the line, and the renderer goes on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from libs.common.models.node import Node
from services.overlayd.engine import RenderError
from services.overlayd.engine import compiled_overlay as render_module
from services.overlayd.engine.wave_renderer import NodeRender, OverlayRenderer
from tests.overlayd.engine.helpers import (
    Link,
    failed,
    make_renderer,
    node,
    rendered,
    unpack,
    write_overlay,
)

ESCAPES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ joiner.__init__.__globals__.os }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ lipsum.__globals__ }}",
    "{{ range.__self__ }}",
    "{{ node.__class__.__base__ }}",
    "{{ include_host.__self__ }}",
    "{{ include_host.__func__.__globals__ }}",
    "{{ include_image.__closure__ }}",
    "{{ file.__self__.tree }}",
    "{{ self.__init__ }}",
    "{{ '{0.__class__}'.format(node) }}",
    "{{ nodes.append(1) }}",
    "{{ node.update({'name': 'x'}) }}",
    "{{ node.pop('name') }}",
    "{{ settings.clear() }}",
    "{{ 'x' * 100000000 }}",
    "{{ [1, 2] * 100000000 }}",
    "{{ 2 ** 100000000 }}",
    "{{ '%099999999d' % 1 }}",
    "{% for i in range(10 ** 9) %}{% endfor %}",
    "{{ 'x'.center(1000000000) }}",
    "{{ 'x'.zfill(1000000000) }}",
    "{{ 'x' | center(1000000000) }}",
    "{{ 'x' | indent(1000000000, first=true) }}",
    "{{ '%099999999d' | format(1) }}",
    "{{ node.name.format.__globals__ }}",
    "{{ node.name.__class__ }}",
    "{% for x in [1] %}{{ loop.__class__ }}{% endfor %}",
    "{% for x in [1] %}{{ loop._iterator }}{% endfor %}",
    "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
]

# Reads the fast path serves, each compared with Jinja2's own immutable sandbox.
SAME_AS_THE_SANDBOX = [
    "{{ node.name.upper() }} {{ node.name.startswith('n') }} {{ 'a,b'.split(',') | join('-') }}",
    "{{ node.get('tags', {}).get('rack', 'none') }} {{ node.tags is defined }}",
    "{{ node.nothing is defined }} {{ node.get('nothing') }} {{ node['name'] }}",
    "{% for k, v in node.items() if k == 'name' %}{{ loop.first }}{{ loop.index }}{{ v }}"
    "{% endfor %}",
    "{{ node.keys() | list | length }} {{ node.values() | list | length }}",
    "{{ 'x{}y'.format(node.name) }} {{ '%s-%d' % (node.name, 3) }} {{ 'ab' * 3 }}",
    "{% set ns = namespace(n=0) %}{% for x in nodes %}{% set ns.n = ns.n + 1 %}{% endfor %}"
    "{{ ns.n }}",
]


async def render_one(renderer: OverlayRenderer, n: Node) -> NodeRender | RenderError:
    return (await renderer.render_nodes([n], [n], {}))[n.name]


@pytest.mark.parametrize("source", SAME_AS_THE_SANDBOX)
async def test_the_fast_path_reads_as_the_sandbox_does(data_dir: Path, source: str) -> None:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    from services.overlayd.engine.context import node_view

    n = node("n1", system=[], tags={"rack": "r4"})
    context = {"node": node_view(n), "nodes": [node_view(n)]}
    # Only our finalize differs on purpose: None prints as nothing.
    reference = ImmutableSandboxedEnvironment(
        undefined=StrictUndefined, finalize=lambda v: "" if v is None else v
    )
    expected = reference.from_string(source).render(context)
    overlays = data_dir / "overlays"
    write_overlay(overlays, "same", {"etc/x.j2": source})
    renderer = make_renderer(data_dir, overlays)
    members = await renderer.render_files(n, "same", [n], {})
    assert {m.path: m.data.decode() for m in members}["etc/x"] == expected


@pytest.mark.parametrize("attack", ESCAPES)
async def test_escapes_are_render_errors_at_their_line(
    data_dir: Path, tmp_path: Path, attack: str
) -> None:
    overlays = tmp_path / "overlays"
    write_overlay(overlays, "evil", {"etc/evil.j2": f"line one\n{attack}\n"})
    renderer = make_renderer(data_dir, overlays)
    error = failed(await render_one(renderer, node("n1", system=["evil"])))
    assert (error.overlay, error.template, error.line) == ("evil", "etc/evil.j2", 2)
    assert error.message


async def test_nodes_stay_untouched_by_a_template_that_tries_to_change_them(
    data_dir: Path, tmp_path: Path
) -> None:
    overlays = tmp_path / "overlays"
    write_overlay(
        overlays,
        "evil",
        {"etc/a.j2": "{% set _ = nodes[0].get('tags', {}).setdefault('x', 1) %}"},
    )
    write_overlay(overlays, "good", {"etc/names.j2": "{{ nodes | map(attribute='name') | list }}"})
    renderer = make_renderer(data_dir, overlays)
    a = node("a", system=["evil"])
    b = node("b", system=["good"])
    results = await renderer.render_nodes([a, b], [a, b], {})
    assert "unsafe" in failed(results["a"]).message or "setdefault" in failed(results["a"]).message
    rendered(results["b"])


@pytest.mark.parametrize(
    ("include", "message"),
    [
        ("../outside.txt", "leaves the overlay"),
        ("etc/../../outside.txt", "leaves the overlay"),
        ("/etc/passwd", "no such file in the overlay"),
        ("etc/link-out", "a symlink, not a file"),
        ("etc", "a dir, not a file"),
    ],
)
async def test_includes_stay_inside_the_overlay(
    data_dir: Path, tmp_path: Path, include: str, message: str
) -> None:
    overlays = tmp_path / "overlays"
    (overlays).mkdir()
    (overlays / "outside.txt").write_text("secret\n")
    write_overlay(
        overlays,
        "inc",
        {
            "etc/link-out": Link("../../outside.txt"),
            "etc/main.j2": f"first\n{{% include {include!r} %}}\n",
        },
    )
    renderer = make_renderer(data_dir, overlays)
    error = failed(await render_one(renderer, node("n1", system=["inc"])))
    assert (error.template, error.line) == ("etc/main.j2", 2)
    assert message in error.message


async def test_include_host_reads_only_below_the_allowed_roots(
    data_dir: Path, tmp_path: Path
) -> None:
    allowed = tmp_path / "allowed"
    (allowed / "sub").mkdir(parents=True)
    (allowed / "sub/motd").write_text("hello from the host\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("do not ship\n")
    os.symlink(outside / "secret", allowed / "link-out")
    (allowed / "api.token").write_text("token\n")
    overlays = tmp_path / "overlays"
    ok = f'{{{{ include_host("{allowed}/sub/motd") }}}}'
    missing = f'{{{{ include_host("{allowed}/nope", default="fallback") }}}}'
    write_overlay(overlays, "host", {"etc/motd.j2": ok, "etc/fallback.j2": missing})
    attacks = {
        "outside": f'{{{{ include_host("{outside}/secret") }}}}',
        "dotdot": f'{{{{ include_host("{allowed}/../outside/secret") }}}}',
        "symlink": f'{{{{ include_host("{allowed}/link-out") }}}}',
        "relative": '{{ include_host("etc/passwd") }}',
        "passwd": '{{ include_host("/etc/passwd") }}',
        "missing": f'{{{{ include_host("{allowed}/nope") }}}}',
    }
    for name, source in attacks.items():
        write_overlay(overlays, name, {"etc/x.j2": f"\n{source}\n"})
    renderer = make_renderer(data_dir, overlays, host_roots=[allowed])
    good = node("good", system=["host"])
    nodes = [good, *(node(f"n-{a}", system=[a]) for a in attacks)]
    results = await renderer.render_nodes(nodes, nodes, {})
    root = unpack(renderer.store, rendered(results["good"]).system_digests[0], tmp_path / "good")
    assert (root / "etc/motd").read_text() == "hello from the host\n"
    assert (root / "etc/fallback").read_text() == "fallback"
    for name in attacks:
        error = failed(results[f"n-{name}"])
        assert (error.template, error.line) == ("etc/x.j2", 2), name
        expected = (
            "no such file"
            if name == "missing"
            else "absolute path"
            if name == "relative"
            else "outside the allowed roots"
        )
        assert expected in error.message, (name, error.message)


async def test_include_host_never_reads_the_api_token(data_dir: Path, tmp_path: Path) -> None:
    (data_dir / "api.token").write_text("s3cret\n")
    overlays = tmp_path / "overlays"
    write_overlay(overlays, "tok", {"etc/t.j2": f'{{{{ include_host("{data_dir}/api.token") }}}}'})
    renderer = make_renderer(data_dir, overlays, host_roots=[data_dir])
    error = failed(await render_one(renderer, node("n1", system=["tok"])))
    assert "outside the allowed roots" in error.message


async def test_include_image_stays_inside_the_image_root(data_dir: Path, tmp_path: Path) -> None:
    rootfs = data_dir / "images/rocky/rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "usr/lib").mkdir(parents=True)
    (rootfs / "usr/lib/os-release").write_text("ID=rocky\n")
    # Absolute links inside an image point inside the image, as in a chroot.
    os.symlink("/usr/lib/os-release", rootfs / "etc/os-release")
    os.symlink("../../../../../../../../etc/hostname", rootfs / "etc/climb")
    overlays = tmp_path / "overlays"
    write_overlay(overlays, "img", {"etc/os.j2": '{{ include_image("/etc/os-release") }}'})
    write_overlay(overlays, "climb", {"etc/x.j2": '{{ include_image("etc/climb") }}'})
    write_overlay(overlays, "dots", {"etc/x.j2": '{{ include_image("../../../../etc/hostname") }}'})
    renderer = make_renderer(data_dir, overlays)
    nodes = [
        node("a", system=["img"], image="rocky"),
        node("b", system=["climb"], image="rocky"),
        node("c", system=["dots"], image="rocky"),
        node("d", system=["img"]),
    ]
    results = await renderer.render_nodes(nodes, nodes, {"rocky": {"name": "rocky"}})
    root = unpack(renderer.store, rendered(results["a"]).system_digests[0], tmp_path / "a")
    assert (root / "etc/os").read_text() == "ID=rocky\n"
    # Both climbs end at <rootfs>/etc/hostname, which the image does not have.
    assert "no such file" in failed(results["b"]).message
    assert "no such file" in failed(results["c"]).message
    assert "the node has no image" in failed(results["d"]).message


async def test_runaway_output_stops_at_the_limit(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(render_module, "MAX_OUTPUT", 100_000)
    overlays = tmp_path / "overlays"
    loop = (
        "{% for i in range(100000) %}{% for j in range(100000) %}xxxxxxxxxx{% endfor %}{% endfor %}"
    )
    write_overlay(overlays, "big", {"etc/big.j2": loop})
    renderer = make_renderer(data_dir, overlays)
    error = failed(await render_one(renderer, node("n1", system=["big"])))
    assert error.template == "etc/big.j2"
    assert "prints more than 100000 characters" in error.message


async def test_data_that_looks_like_a_marker_is_just_text(data_dir: Path, tmp_path: Path) -> None:
    forged = "\x00wp0123456789012345:F1\x00"
    overlays = tmp_path / "overlays"
    write_overlay(overlays, "m", {"etc/c.j2": "{{ node.comment }}|{{ file('etc/real') }}real\n"})
    renderer = make_renderer(data_dir, overlays)
    n = node("n1", system=["m"], comment=forged)
    members = await renderer.render_files(n, "m", [n], {})
    assert {m.path: m.data for m in members}["etc/real"] == b"real\n"
    mangled = "{{ file('etc/real') | upper }}x"
    write_overlay(overlays, "m2", {"etc/c.j2": mangled})
    n2 = node("n2", system=["m2"])
    error = failed(await render_one(renderer, n2))
    assert "marker was changed by a filter" in error.message
