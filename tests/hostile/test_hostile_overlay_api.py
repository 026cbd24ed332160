"""Hostile templates sent through the overlayd API of a real `wolfpack up`, as an API user
would: escapes from the Jinja2 sandbox and reads of files outside what a template may include
fail that node's render with the overlay, the template and the line named, leak nothing into
any answer or event, and leave other nodes rendering.

tests/overlayd/engine/test_sandbox.py holds the full list against the engine; this is the same
door seen from the outside, through HTTP, NATS and the real service's configuration.
"""

from __future__ import annotations

import gzip
import secrets
from pathlib import Path
from typing import Any, Final

import httpx
import pytest

from tests.overlayd.helpers import caught_up, following_boot, node_events
from tests.stack import UpStack, overlayd_settled

TEMPLATE: Final = "etc/x.j2"


def attacks(data: Path, outside: Path) -> dict[str, str]:
    return {
        "mro": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "cycler globals": "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
        "joiner globals": "{{ joiner.__init__.__globals__ }}",
        "lipsum globals": "{{ lipsum.__globals__['os'].environ }}",
        "namespace globals": "{{ namespace.__init__.__globals__ }}",
        "attr filter": "{{ '' | attr('__class__') | attr('__mro__') }}",
        "format spec": "{{ '{0.__class__.__init__.__globals__}'.format(node) }}",
        "template context": "{{ self._TemplateReference__context }}",
        "include climbing": "{% include '../../../../../../etc/passwd' %}",
        "include absolute": "{% include '/etc/passwd' %}",
        "import the token": "{% import '../../../api.token' as t %}",
        "extends": "{% extends '/etc/passwd' %}",
        "include_host token": f"{{{{ include_host('{data}/api.token') }}}}",
        "include_host environ": "{{ include_host('/proc/self/environ') }}",
        "include_host outside": f"{{{{ include_host('{outside}/secret.txt') }}}}",
        "include_host link out": f"{{{{ include_host('{data}/leak') }}}}",
        "include_host dot-dot": f"{{{{ include_host('/etc/../{outside}/secret.txt') }}}}",
        "include_host shadow": "{{ include_host('/etc/shadow') }}",
        "include_host host key": "{{ include_host('/etc/ssh/ssh_host_ed25519_key') }}",
        "include_host DATA": f"{{{{ include_host('{data}/overlayd/keys/ssh_host_rsa_key') }}}}",
        "include_host relative": "{{ include_host('etc/passwd') }}",
        "include_image": "{{ include_image('../../../../etc/passwd') }}",
    }


@pytest.fixture
def outside(tmp_path: Path, up: UpStack) -> tuple[Path, bytes]:
    """A secret outside every include root, and a link to it inside DATA (allowed once)."""
    secret = f"SECRET-{secrets.token_hex(8)}".encode()
    (tmp_path / "secret.txt").write_bytes(secret + b"\n")
    leak = up.data / "leak"
    leak.unlink(missing_ok=True)
    leak.symlink_to(tmp_path / "secret.txt")
    return tmp_path, secret


async def test_hostile_templates_fail_their_node_and_leak_nothing(
    up: UpStack, outside: tuple[Path, bytes]
) -> None:
    folder, secret = outside
    hostile = attacks(up.data, folder)
    forbidden = [secret, up.token.encode()]
    headers = {"Authorization": f"Bearer {up.token}"}
    overlayd = httpx.AsyncClient(base_url=f"{up.url('overlayd')}/api/v1", headers=headers)
    registry = httpx.AsyncClient(base_url=f"{up.registry_url}/api/v1", headers=headers)
    async with overlayd, registry, node_events(up.nats_url) as events:
        for i, source in enumerate([*hostile.values(), "{{ node.name }} is fine"]):
            r = await overlayd.post("/overlays", json={"name": f"evil-{i}", "empty": True})
            assert r.status_code == 201, r.text
            content = f"line one\n{source}\n".encode()
            r = await overlayd.put(f"/overlays/evil-{i}/files/{TEMPLATE}", content=content)
            assert r.status_code == 200, r.text
        async with following_boot(up.nats_url) as boot:
            for i in range(len(hostile) + 1):
                node = {"profiles": ["default"], "system_overlay": [f"evil-{i}"]}
                r = await registry.put(f"/nodes/hx-{i}", json=node)
                assert r.status_code == 201, r.text
            # The benign one renders: a hostile neighbour stops nobody else.
            await boot.manifest(f"hx-{len(hostile)}")

        for i, name in enumerate(hostile):
            failure = await events.failure(f"hx-{i}")
            where = (failure.overlay, failure.template, failure.line)
            assert where == (f"evil-{i}", TEMPLATE, 2), (name, failure)
            assert failure.message, name
            r = await overlayd.get(f"/overlays/evil-{i}", params={"render": f"hx-{i}"})
            assert r.status_code == 400, (name, r.text)
            assert f"{TEMPLATE}:2" in r.json()["error"], (name, r.text)
            for text in (failure.message.encode(), r.content):
                assert not [s for s in forbidden if s in text], name
        assert not [
            e
            for e in events.rendered
            if e.node.startswith("hx-") and e.node != f"hx-{len(hostile)}"
        ]


async def test_include_host_of_etc_shadow_fails_and_changes_nothing(up: UpStack) -> None:
    """include_host reads an allow-list (DATA/overlayd.yaml `include_host`, by default
    passwd, group, hosts, resolv.conf): /etc/shadow fails the node's render with an error
    naming the path, and the node keeps the manifest it had."""
    headers = {"Authorization": f"Bearer {up.token}"}
    overlayd = httpx.AsyncClient(base_url=f"{up.url('overlayd')}/api/v1", headers=headers)
    registry = httpx.AsyncClient(base_url=f"{up.registry_url}/api/v1", headers=headers)
    path = f"/overlays/shadow-reader/files/{TEMPLATE}"
    async with overlayd, registry, node_events(up.nats_url) as events:
        r = await overlayd.post("/overlays", json={"name": "shadow-reader", "empty": True})
        assert r.status_code == 201, r.text
        allowed = b"{{ include_host('/etc/passwd')[:5] }}\n"
        assert (await overlayd.put(path, content=allowed)).status_code == 200
        async with following_boot(up.nats_url) as boot:
            node = {"profiles": ["default"], "system_overlay": ["shadow-reader"]}
            r = await registry.put("/nodes/hs-1", json=node)
            assert r.status_code == 201, r.text
            await boot.manifest("hs-1")
            await _settled(up, overlayd)  # the follow-up (every node's hosts file) done too
            before = await caught_up(boot, up.nats_url, "hs-1")  # this watch may lag
            blobs_before = set(_blobs(up.data))
            r = await overlayd.put(path, content=b"line one\n{{ include_host('/etc/shadow') }}\n")
            assert r.status_code == 200, r.text
            failure = await events.failure("hs-1")
            assert (failure.overlay, failure.template, failure.line) == (
                "shadow-reader",
                TEMPLATE,
                2,
            )
            assert "/etc/shadow" in failure.message
            assert "outside the allowed roots" in failure.message
            assert "overlayd.yaml" in failure.message
            await _settled(up, overlayd)
            # The last good manifest stays.
            assert await caught_up(boot, up.nats_url, "hs-1") == before
        r = await overlayd.get("/overlays/shadow-reader", params={"render": "hs-1"})
        assert r.status_code == 400 and "/etc/shadow" in r.json()["error"], r.text
    # Nothing of /etc/shadow went into the store.
    shadow = _shadow()
    for blob in set(_blobs(up.data)) - blobs_before:
        assert shadow not in _plain(blob), blob


async def _settled(up: UpStack, overlayd: httpx.AsyncClient) -> None:
    async def status() -> dict[str, Any]:
        found: dict[str, Any] = (await overlayd.get("/status")).json()
        return found

    await overlayd_settled(up.nats_url, status)


def _shadow() -> bytes:
    text = Path("/etc/shadow").read_bytes().strip()
    assert text, "/etc/shadow is empty: nothing to look for"
    return text


def _blobs(data: Path) -> list[Path]:
    return [p for p in (data / "cas").rglob("*") if p.is_file() and len(p.name) == 64]


def _plain(blob: Path) -> bytes:
    raw = blob.read_bytes()
    return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
