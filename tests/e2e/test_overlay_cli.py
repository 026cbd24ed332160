"""`wolfctl overlay` as an administrator uses it, against real registry and overlayd processes:
list, create, edit (non-interactively and through $EDITOR), show, render for a node, mkdir,
chmod, import a tree and a file, delete, build; errors are one line and exit status 1."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli import run_cli
from tests.overlayd.helpers import Stack, following_boot, start_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with start_stack(tmp_path_factory.mktemp("cli")) as running:
        yield running


def wolfctl(
    stack: Stack, *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {
        "WOLFPACK_URL": stack.registry_url,
        "WOLFPACK_OVERLAYD_URL": stack.overlayd_url,
        "WOLFPACK_TOKEN": stack.token,
        "COLUMNS": "200",
    }
    return run_cli("wolfctl", *args, env=base | (env or {}), stdin=stdin, within=120)


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout


def fails(done: subprocess.CompletedProcess[str], words: str) -> None:
    assert done.returncode == 1, done.stdout
    assert words in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


async def test_overlay_verbs(stack: Stack, tmp_path: Path) -> None:
    listed = ok(wolfctl(stack, "overlay", "list"))
    assert any(line.split()[:2] == ["wwinit", "shipped"] for line in listed.splitlines())
    every = ok(wolfctl(stack, "overlay", "list", "-a"))
    assert any(line.split()[:3] == ["wwinit", "init", "-rwxr-xr-x"] for line in every.splitlines())

    ok(wolfctl(stack, "overlay", "create", "site", "--empty"))
    fails(wolfctl(stack, "overlay", "create", "site"), "already exists")
    ok(
        wolfctl(
            stack,
            "overlay",
            "edit",
            "site",
            "etc/motd.j2",
            "--from",
            "-",
            stdin="hello {{ node.name }}\n",
        )
    )
    # $EDITOR gets a copy (click runs `$EDITOR FILE`); what it saves is uploaded.
    ok(
        wolfctl(
            stack, "overlay", "edit", "site", "etc/motd.j2", env={"EDITOR": "sed -i s/hello/hi/"}
        )
    )
    assert ok(wolfctl(stack, "overlay", "show", "site", "etc/motd.j2")) == "hi {{ node.name }}\n"
    unchanged = wolfctl(stack, "overlay", "edit", "site", "etc/motd.j2", env={"EDITOR": "true"})
    assert unchanged.returncode == 0 and "no change" in unchanged.stderr

    async with stack.registry_api() as registry:
        r = await registry.put(
            "/nodes/c01",
            json={
                "profiles": ["default"],
                "system_overlay": ["site"],
                "network_devices": {"default": {"ipaddr": "10.0.7.1", "netmask": "255.255.0.0"}},
            },
        )
        assert r.status_code == 201, r.text
    async with following_boot(stack.nats_url) as boot:
        await boot.manifest("c01")
    rendered = ok(wolfctl(stack, "overlay", "show", "site", "--render", "c01"))
    assert any(line.split()[:2] == ["etc/motd", "-rw-r--r--"] for line in rendered.splitlines())
    assert (
        ok(wolfctl(stack, "overlay", "show", "site", "etc/motd", "--render", "c01")) == "hi c01\n"
    )

    ok(wolfctl(stack, "overlay", "mkdir", "site", "var/spool/x", "--mode", "0700"))
    ok(wolfctl(stack, "overlay", "chmod", "site", "etc/motd.j2", "0600"))
    fails(wolfctl(stack, "overlay", "chmod", "site", "etc/motd.j2", "rw-"), "octal")

    tree = tmp_path / "tree"
    (tree / "usr/local/bin").mkdir(parents=True)
    tool = tree / "usr/local/bin/tool"
    tool.write_text("#!/bin/sh\necho tool\n")
    tool.chmod(0o750)
    (tree / "etc").mkdir()
    (tree / "etc/tool.conf").symlink_to("/etc/other.conf")
    ok(wolfctl(stack, "overlay", "import", "site", str(tree)))
    single = tmp_path / "file.conf"
    single.write_text("key=value\n")
    single.chmod(0o640)
    ok(wolfctl(stack, "overlay", "import", "site", str(single), "etc/file.conf"))
    shown = json.loads(ok(wolfctl(stack, "overlay", "show", "site", "-o", "json")))
    files = shown["files"]
    assert files["etc/motd.j2"]["mode"] == 0o600
    assert files["var/spool/x"]["mode"] == 0o700
    assert files["usr/local/bin/tool"]["mode"] == 0o750
    assert files["etc/tool.conf"] == {"kind": "symlink", "mode": 0o777, "target": "/etc/other.conf"}
    assert files["etc/file.conf"]["mode"] == 0o640
    assert ok(wolfctl(stack, "overlay", "show", "site", "etc/file.conf")) == "key=value\n"

    ok(wolfctl(stack, "overlay", "delete", "site", "etc/file.conf", "--yes"))
    assert (
        "etc/file.conf"
        not in json.loads(ok(wolfctl(stack, "overlay", "show", "site", "-o", "json")))["files"]
    )
    built = ok(wolfctl(stack, "overlay", "build"))
    assert built.startswith("rendered ") and "0 failed" in built
    ok(wolfctl(stack, "overlay", "build", "c01"))
    fails(wolfctl(stack, "overlay", "build", "c[01-02]"), "no such nodes: c02")
    ok(wolfctl(stack, "overlay", "delete", "site", "--yes"))
    assert "site" not in ok(wolfctl(stack, "overlay", "list")).split()
    fails(wolfctl(stack, "overlay", "show", "nothing"), "does not exist")
    gone = wolfctl(stack, "overlay", "list", env={"WOLFPACK_OVERLAYD_URL": "http://127.0.0.1:1"})
    fails(gone, "cannot reach overlayd")
