"""`wolfpack up --tls` as a real process tree, and `wolfpack token rotate` against it: HTTPS
with a private CA, bootd's plain HTTP boot path, and services following a new token without
a restart."""

from __future__ import annotations

import asyncio
import ssl
import stat
import subprocess
import time
from collections.abc import Iterator

import httpx
import msgspec
import pytest

from libs.common import names, subjects
from libs.common.endpoints import read_endpoints
from libs.common.models.events import ChangeEvent
from libs.common.security.api_token import read_token
from libs.common.security.token_rotation import read_previous
from tests.cli import run_cli, run_cli_async
from tests.needs import unavailable
from tests.stack import (
    UpStack,
    nats_client,
    run_service,
    start_up,
    stop_process,
    wait_healthy,
)
from tests.waiting import eventually

MAC = "52:54:00:aa:bb:01"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpStack]:
    with start_up(tmp_path_factory.mktemp("secure") / "data", None, "--tls") as up:
        yield up


def client(stack: UpStack, service: str, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(
        base_url=stack.url(service),
        verify=ssl.create_default_context(cafile=str(stack.ca)),
        headers=headers,
        timeout=30,
        trust_env=False,
    )


def wolfpack(stack: UpStack, *args: str) -> subprocess.CompletedProcess[str]:
    done = run_cli("wolfpack", *args, "--data", str(stack.data), within=60)
    assert done.returncode == 0, done.stderr
    return done


def current_token(stack: UpStack) -> str:
    token = read_token(stack.data)
    assert token is not None
    return token


def writes(stack: UpStack, token: str, tag: str) -> dict[str, int]:
    """One authenticated request to each service that checks the token (bootd's is a read:
    its only write is discovery, done with the registry's API); service → status."""
    with client(stack, "registry", token) as api:
        registry = api.put(f"/api/v1/nodes/rot-{tag}", json={}).status_code
    with client(stack, "builder", token) as api:
        builder = api.post("/api/v1/webhooks/registry", json={"events": []}).status_code
    with client(stack, "overlayd", token) as api:
        body = {"name": f"rot-{tag}", "empty": True}
        overlayd = api.post("/api/v1/overlays", json=body).status_code
    with client(stack, "bootd", token) as api:
        bootd = api.get("/api/v1/status").status_code
    return {"registry": registry, "builder": builder, "overlayd": overlayd, "bootd": bootd}


ACCEPTED = {"registry": 201, "builder": 200, "overlayd": 201, "bootd": 200}
REFUSED = dict.fromkeys(ACCEPTED, 401)


def test_keys_are_private_and_endpoints_name_https_and_the_ca(stack: UpStack) -> None:
    tls = stack.data / "tls"
    for name, mode in (("ca.key", 0o600), ("server.key", 0o600), ("ca.pem", 0o644)):
        assert stat.S_IMODE((tls / name).stat().st_mode) == mode, name
    found = read_endpoints(stack.data)
    assert found.ca_file == str(stack.ca.resolve())
    assert found.services == {name: stack.url(name) for name in names.SERVICES}
    assert all(url.startswith("https://") for url in found.services.values())


def test_wolfctl_works_over_https(stack: UpStack) -> None:
    with client(stack, "registry", stack.token) as api:
        assert api.put("/api/v1/nodes/tls-n1", json={}).status_code == 201
    listed = run_cli(
        "wolfctl", "node", "list", "-o", "json", env={"WOLFPACK_DATA": str(stack.data)}, within=60
    )
    assert listed.returncode == 0, listed.stderr
    assert '"tls-n1"' in listed.stdout


def test_the_apis_need_the_ca(stack: UpStack) -> None:
    with client(stack, "registry", stack.token) as api:
        assert api.get("/api/v1/nodes").status_code == 200
    # The system's CAs do not know ours: the client refuses the server.
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{stack.url('registry')}/healthz", trust_env=False, timeout=10)


def test_plain_http_to_a_tls_port_gets_no_answer(stack: UpStack) -> None:
    plain = stack.url("registry").replace("https://", "http://")
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{plain}/healthz", trust_env=False, timeout=10)


def test_nodes_boot_over_plain_http_while_the_api_needs_https(stack: UpStack) -> None:
    script = httpx.get(f"{stack.boot_url}/ipxe/{MAC}", trust_env=False, timeout=10)
    assert script.status_code == 200 and script.text.startswith("#!ipxe")
    # The token would cross in clear on the plain port: its API refuses and says where to go.
    headers = {"Authorization": f"Bearer {stack.token}"}
    refused = httpx.get(
        f"{stack.boot_url}{names.API_PREFIX}/status", headers=headers, trust_env=False
    )
    assert refused.status_code == 403
    assert str(names.BOOTD_TLS_PORT + stack.port_offset) in refused.json()["error"]
    with client(stack, "bootd", stack.token) as api:
        assert api.get("/api/v1/status").status_code == 200


def test_the_certificate_names_the_address_nodes_reach_bootd_at(stack: UpStack) -> None:
    """No --ip: nodes get the host address overlayd finds (/warewulf/config), and their agent
    checks bootd's HTTPS certificate for it."""
    from libs.common.security.x509 import cert_names
    from libs.common.site.config import host_address

    found = host_address().ip
    if found.startswith("127."):
        unavailable("this host has no address but loopback, which every certificate names")
    names_in_cert = cert_names((stack.data / "tls" / "server.pem").read_bytes())
    assert found in names_in_cert


def test_a_second_start_reuses_the_ca(stack: UpStack) -> None:
    ca, cert = stack.ca.read_bytes(), (stack.data / "tls" / "server.pem").read_bytes()
    process, port, log = run_service("registry", stack.data, stack.nats_url, "--tls")
    try:
        wait_healthy(f"https://127.0.0.1:{port}", process, log, ca=stack.ca)
    finally:
        stop_process(process)
    assert stack.ca.read_bytes() == ca
    assert (stack.data / "tls" / "server.pem").read_bytes() == cert


def test_a_rotated_token_works_at_once_and_the_old_one_until_its_grace_ends(
    stack: UpStack,
) -> None:
    old = current_token(stack)
    assert writes(stack, old, "a") == ACCEPTED
    wolfpack(stack, "token", "rotate", "--grace", "4")
    new = current_token(stack)
    assert new != old
    assert writes(stack, new, "b") == ACCEPTED
    assert writes(stack, old, "c") == ACCEPTED
    # Wait for the expiry the rotation wrote down, not a guess.
    expires = max(p.expires for p in read_previous(stack.data) if p.token == old)
    time.sleep(max(0.0, expires - time.time()) + 0.05)
    assert writes(stack, old, "d") == REFUSED
    assert writes(stack, new, "e") == ACCEPTED


async def ipxe_once_bootd_knows(stack: UpStack, mac: str) -> str:
    """bootd's script for `mac` once bootd's own watch of KV `nodes` has brought it the
    discoverable node. The registry wrote KV before its event, so the first ask nearly always
    finds it there; no event says when bootd has it, so a slower watch gets a few more asks,
    20 a second, as a node would retry."""
    async with httpx.AsyncClient(trust_env=False, timeout=10) as boot:
        answer = await eventually(
            lambda: boot.get(f"{stack.boot_url}/ipxe/{mac}"),
            f"bootd's script for {mac} not 'unconfigured'",
            within=10,
            until=lambda answer: "unconfigured" not in answer.text,
        )
    return answer.text


async def test_grace_zero_revokes_at_once_and_bootd_discovers_with_the_new_token(
    stack: UpStack,
) -> None:
    old = current_token(stack)
    wolfpack(stack, "token", "rotate", "--grace", "0")
    assert writes(stack, old, "f") == REFUSED
    new = current_token(stack)
    assert writes(stack, new, "g") == ACCEPTED
    # bootd claims a node for an unknown MAC through the registry's HTTPS API, with the token
    # it reads from the file: the old one would be refused.
    async with nats_client(stack.nats_url) as bus:
        changes = await bus.subscribe(subjects.node("disc1", "updated"))
        await bus.flush()  # the server has the subscription before the node is written
        with client(stack, "registry", new) as api:
            assert api.put("/api/v1/nodes/disc1", json={"discoverable": True}).status_code == 201
            created = msgspec.json.decode((await changes.next_msg(30)).data, type=ChangeEvent)
            answer = await ipxe_once_bootd_knows(stack, MAC)
            assert f"MAC {MAC} was given to node disc1" in answer
            # The registry's event for bootd's claim: the token it sent was accepted.
            claimed = msgspec.json.decode((await changes.next_msg(30)).data, type=ChangeEvent)
            assert claimed.revision > created.revision and "network_devices" in claimed.fields
            node = api.get("/api/v1/nodes/disc1").json()
    assert node["network_devices"]["default"]["hwaddr"] == MAC
    assert node.get("discoverable") is None


async def test_rotations_at_once_leave_one_valid_token(stack: UpStack) -> None:
    before = current_token(stack)
    rotate = ("token", "rotate", "--grace", "60", "--data", str(stack.data))
    racing = [run_cli_async("wolfpack", *rotate, within=60) for _ in range(4)]
    assert [done.returncode for done in await asyncio.gather(*racing)] == [0, 0, 0, 0]
    token_file = (stack.data / names.TOKEN_FILE).read_text()
    assert len(token_file.splitlines()) == 1
    current = current_token(stack)
    replaced = [p.token for p in read_previous(stack.data) if p.expires > time.time()]
    # The token from before and the three written in between: each replaced exactly once.
    assert before in replaced and current not in replaced
    assert len(set(replaced[-4:])) == 4
    for n, token in enumerate([current, *replaced[-4:]]):
        assert writes(stack, token, f"race{n}") == ACCEPTED
