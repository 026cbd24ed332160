"""Secrets never leak, and a node gets only its own: a whole `wolfpack up` at log level debug,
IPMI passwords (a node's and a profile's), asset keys, the cluster's SSH host keys and the API
token, looked for in every list and show an administrator runs (API and wolfctl, table, JSON
and YAML), in every log line and in every message of the WOLFPACK stream. The explicit reads
(`--secrets`, `?secrets=true`, a render for one node) still return them to the token holder,
and each node's archives still carry what the node needs, to that node alone."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from collections.abc import Iterator
from typing import Any, Final

import httpx
import pytest

from libs.common import names
from tests.bootd.rawhttp import get_from_port
from tests.e2e.secrets_probe import Places, Secrets, log_files, stream_messages, unpacked, wolfctl
from tests.needs import need_root
from tests.overlayd.helpers import caught_up, following_boot
from tests.stack import UpStack, overlayd_settled, start_up

MAC_A: Final = "52:54:00:5e:c0:01"
MAC_B: Final = "52:54:00:5e:c0:02"
PRIVILEGED: Final = (700, 800)
API: Final = "/api/v1"
FORMATS: Final = ("table", "json", "yaml")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpStack]:
    need_root("a node's agent fetch (a privileged source port)")
    data = tmp_path_factory.mktemp("secrets") / "data"
    with start_up(data, None, "--log-level", "debug") as running:
        yield running


async def ok(stack: UpStack, *args: str) -> str:
    code, out, err = await wolfctl(stack, *args)
    assert code == 0 and "Traceback" not in err, (args, err)
    return out


async def settled(stack: UpStack, overlayd: httpx.AsyncClient) -> None:
    async def status() -> dict[str, Any]:
        found: dict[str, Any] = (await overlayd.get(f"{API}/status")).json()
        return found

    await overlayd_settled(stack.nats_url, status)


async def test_secrets_stay_with_their_node(stack: UpStack) -> None:
    hidden = Secrets()
    profile_pw, pw_a, key_a, key_b = (f"{w}-{secrets.token_hex(10)}" for w in "PWAB")
    for what, value in [
        ("profile IPMI password", profile_pw),
        ("node IPMI password", pw_a),
        ("asset key of sa-1", key_a),
        ("asset key of sa-2", key_b),
        ("API token", stack.token),
        ("NATS client token", stack.nats_token),
        ("NATS store key", (stack.data / names.NATS_KEY_FILE).read_text().strip()),
    ]:
        hidden.add(what, value)

    await ok(stack, "profile", "add", "bmc", "--ipmiuser", "admin", "--ipmipass", profile_pw)
    await ok(stack, "node", "add", "sa-1", "-P", "default,bmc", "-H", MAC_A, "-I", "10.77.0.1",
             "--asset", key_a, "--ipmipass", pw_a)  # fmt: skip
    await ok(stack, "node", "add", "sa-2", "-P", "default,bmc", "-H", MAC_B, "-I", "10.77.0.2",
             "--asset", key_b)  # fmt: skip
    headers = {"Authorization": f"Bearer {stack.token}"}
    clients = {
        s: httpx.AsyncClient(base_url=stack.url(s), headers=headers, timeout=30)
        for s in ("registry", "overlayd", "builder", "bootd")
    }
    async with following_boot(stack.nats_url) as boot:
        for node in ("sa-1", "sa-2"):
            await boot.manifest(node, lambda m: bool(m.system_digests and m.runtime_digest))
        await settled(stack, clients["overlayd"])
        a = await caught_up(boot, stack.nats_url, "sa-1")
        b = await caught_up(boot, stack.nats_url, "sa-2")
    hidden.add_private_keys(stack.data / "overlayd" / "keys")

    # -- what each node may have, and what it may not ---------------------------------------
    bootd = clients["bootd"]
    runtime = f"{stack.url('bootd')}/runtime"
    r = await bootd.get(f"/runtime/{MAC_A}", params={"assetkey": key_a})
    assert r.status_code == 403 and "privileged" in r.text  # secure mode is on by default
    status, body = await get_from_port(f"{runtime}/{MAC_A}?assetkey={key_a}", *PRIVILEGED)
    assert status == 200
    assert b"10.77.0.2" in unpacked(body) and b"sa-2" in unpacked(body)  # its hosts file
    status, body = await get_from_port(f"{runtime}/{MAC_B}?assetkey={key_a}", *PRIVILEGED)
    assert status == 403, body  # node a, with its own key, asking for node b's
    own_a, own_b, shared = a.system_digests[-1], b.system_digests[-1], a.system_digests[0]
    as_a = {"wwid": MAC_A, "assetkey": key_a}
    r = await bootd.get(f"/blobs/sha256/{own_a}", params=as_a)
    assert r.status_code == 200 and key_a.encode() in unpacked(r.content)  # its config
    r = await bootd.get(f"/blobs/sha256/{shared}", params=as_a)
    assert r.status_code == 200 and hidden.found_in(unpacked(r.content))  # sshd's host keys
    # Not its own: 404, as a blob never stored; its own runtime archive: /runtime only (403).
    refused = [
        (own_b, as_a, 404),
        (own_b, {}, 404),
        (shared, {}, 404),
        (a.runtime_digest, as_a, 403),
    ]
    for digest, params, status in refused:
        r = await bootd.get(f"/blobs/sha256/{digest}", params=params)
        assert r.status_code == status and not hidden.found_in(r.content), (digest, params)
    r = await bootd.get(f"/ipxe/{MAC_A}", params={"assetkey": key_a})  # into the access log
    assert r.status_code == 200 and key_a not in r.text

    # -- every list and show --------------------------------------------------------------
    places = Places()
    reads = {
        "registry": ["/nodes", "/nodes?merged=true", "/nodes/sa-1", "/nodes/sa-1?merged=true",
                     "/profiles", "/profiles?merged=true", "/profiles/bmc", "/export"],
        "overlayd": ["/overlays", "/overlays?files=true", "/overlays/wwinit",
                     "/overlays/ssh.host_keys", "/nodes/sa-1/manifest", "/nodes/sa-2/manifest",
                     "/status"],
        "builder": ["/images"],
        "bootd": ["/status"],
    }  # fmt: skip
    for service, paths in reads.items():
        for path in paths:
            r = await clients[service].get(f"{API}{path}")
            assert r.status_code == 200, (service, path, r.text)
            places.add(f"{service} GET {path}", r.content)
    commands = [
        *(("node", "list", *view, "-o", fmt)
          for view in ((), ("-a",), ("-l",), ("-n",), ("-i",)) for fmt in FORMATS),
        *(("profile", "list", *view, "-o", fmt) for view in ((), ("-a",)) for fmt in FORMATS),
        *(("node", "status", "-o", fmt) for fmt in FORMATS),
        ("overlay", "list"), ("overlay", "show", "wwinit"), ("overlay", "show", "ssh.host_keys"),
        ("image", "list"), ("node", "export"),
    ]  # fmt: skip
    outputs = await asyncio.gather(*(ok(stack, *command) for command in commands))
    for command, out in zip(commands, outputs, strict=True):
        places.add("wolfctl " + " ".join(command), out)

    # -- the explicit reads still give them to the token holder ------------------------------
    shown = await ok(stack, "node", "list", "--secrets", "-o", "json", "sa-1")
    assert pw_a in shown and key_a in shown
    assert profile_pw in await ok(stack, "profile", "list", "--secrets", "-o", "yaml", "bmc")
    assert profile_pw in await ok(stack, "node", "list", "-a", "--secrets", "sa-2")
    exported = await ok(stack, "node", "export", "--secrets")
    assert all(v in exported for v in (profile_pw, pw_a, key_a, key_b))
    rendered = await ok(stack, "overlay", "show", "wwinit", "--render", "sa-1", "-o", "json")
    config = next(f for f in json.loads(rendered) if f["path"] == "warewulf/config")
    assert key_a.encode() in base64.b64decode(config["data"])

    # -- the logs (debug) and every event ----------------------------------------------------
    for name, text in log_files(stack).items():
        places.add(f"log {name}", text)
    assert b"assetkey=********" in places.texts["log up.log"]  # access lines were logged
    messages = await stream_messages(stack.nats_url)
    assert len(messages) > 10
    for i, message in enumerate(messages):
        places.add(f"WOLFPACK message {i}", message)
    for client in clients.values():
        await client.aclose()
    assert places.leaks(hidden) == {}
