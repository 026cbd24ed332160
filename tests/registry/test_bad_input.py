"""Bad input is answered 4xx naming the problem, and nothing already stored changes."""

from __future__ import annotations

import httpx
import pytest

API = "/api/v1"


@pytest.fixture
async def seeded(api: httpx.AsyncClient) -> str:
    """A small registry; returns its export so a test can prove nothing changed."""
    await api.put(f"{API}/profiles/default", json={"kernel": {"args": ["quiet"]}})
    await api.put(f"{API}/profiles/compute", json={"profiles": ["default"]})
    await api.put(
        f"{API}/nodes/n1",
        json={
            "profiles": ["compute"],
            "network_devices": {
                "default": {
                    "hwaddr": "aa:bb:cc:dd:ee:01",
                    "ipaddr": "10.0.0.1",
                    "ipaddr6": "fd00::1",
                }
            },
        },
    )
    return (await api.get(f"{API}/export")).text


async def _unchanged(api: httpx.AsyncClient, before: str) -> None:
    assert (await api.get(f"{API}/export")).text == before


CASES = [
    # (method, path, body, expected status, text the error must contain, field)
    ("PUT", "/nodes/n2", b"{not json", 400, "not valid JSON", None),
    ("PUT", "/nodes/n2", b"", 400, "empty", None),
    ("PUT", "/nodes/n2", b'{"image": 5}', 400, "Expected `str", "image"),
    (
        "PUT",
        "/nodes/n2",
        b'{"network_devices": {"default": {"mtu": "big"}}}',
        400,
        "int",
        "network_devices.default.mtu",
    ),
    ("PUT", "/nodes/n2", b'{"bogus_field": 1}', 400, "unknown field", "bogus_field"),
    (
        "PUT",
        "/nodes/n2",
        b'{"network_devices": {"default": {"hwaddr": "zz:zz"}}}',
        400,
        "zz:zz",
        "network_devices.default.hwaddr",
    ),
    (
        "PUT",
        "/nodes/n2",
        b'{"network_devices": {"default": {"ipaddr": "10.0.0.300"}}}',
        400,
        "10.0.0.300",
        "network_devices.default.ipaddr",
    ),
    (
        "PUT",
        "/nodes/n2",
        b'{"network_devices": {"default": {"netmask": "255.0.255.0"}}}',
        400,
        "255.0.255.0",
        "network_devices.default.netmask",
    ),
    (
        "PUT",
        "/nodes/n2",
        b'{"network_devices": {"default": {"ipaddr6": "fd00::zz"}}}',
        400,
        "fd00::zz",
        "network_devices.default.ipaddr6",
    ),
    (
        "PUT",
        "/nodes/n2",
        b'{"network_devices": {"default": {"mtu": 20}}}',
        400,
        "20",
        "network_devices.default.mtu",
    ),
    (
        "PUT",
        "/nodes/n2",
        b'{"network_devices": {"x": {"hwaddr": "AA:BB:CC:DD:EE:01"}}}',
        409,
        "n1",
        "network_devices.x.hwaddr",
    ),
    (
        "PUT",
        "/nodes/n2",
        b'{"network_devices": {"x": {"ipaddr": "10.0.0.1"}}}',
        409,
        "n1",
        "network_devices.x.ipaddr",
    ),
    (
        "PUT",
        "/nodes/n2",
        b'{"network_devices": {"x": {"ipaddr6": "fd00:0::1"}}}',
        409,
        "n1",
        "network_devices.x.ipaddr6",
    ),
    ("PUT", "/nodes/n2", b'{"profiles": ["nosuch"]}', 400, "nosuch", "profiles"),
    # Disk and file system keys are device paths: fstab lines and unit names are made of them.
    ("PUT", "/nodes/n2", b'{"filesystems": {"": {"path": "/x"}}}', 400, "''", "filesystems"),
    ("PUT", "/nodes/n2", b'{"disks": {"": {}}}', 400, "device path", "disks"),
    ("PUT", "/nodes/n2", b'{"filesystems": {"vda": {}}}', 400, "under /dev", "filesystems"),
    (
        "PUT",
        "/profiles/p2",
        b'{"filesystems": {"/dev/vda1 /etc xfs": {}}}',
        400,
        "device path",
        "filesystems",
    ),
    ("PATCH", "/nodes/n1", b'{"disks": {"/dev/../etc": {}}}', 400, "device path", "disks"),
    (
        "PUT",
        "/nodes/n2",
        b'{"disks": {"/dev/vda": {"partitions": {"": {"number": 1}}}}}',
        400,
        "partition label",
        "disks./dev/vda.partitions",
    ),
    ("PUT", "/nodes/bad_name", b"{}", 400, "bad_name", "name"),
    (
        "PUT",
        "/profiles/default",
        b'{"profiles": ["compute"]}',
        400,
        "default -> compute -> default",
        "profiles",
    ),
    ("PUT", "/profiles/loop", b'{"profiles": ["loop"]}', 400, "loop -> loop", "profiles"),
    (
        "PATCH",
        "/nodes/n1",
        b'{"network_devices": {"default": {"ipaddr": "nope"}}}',
        400,
        "nope",
        "network_devices.default.ipaddr",
    ),
    ("PATCH", "/nodes/n1", b'{"profiles": "compute"}', 400, "Expected `array", "profiles"),
    ("PATCH", "/nodes/n1", b"[1, 2]", 400, "JSON object", None),
    ("PATCH", "/nodes/n1", b'{"profiles": ["nosuch"]}', 400, "nosuch", "profiles"),
    (
        "POST",
        "/nodes:bulk",
        b'{"names": "m[1-3]", "ipaddr": "300.1.1.1"}',
        400,
        "300.1.1.1",
        "ipaddr",
    ),
    ("POST", "/nodes:bulk", b'{"names": "m[1-3]", "ipaddr": "10.0.0.0"}', 409, "10.0.0.1", None),
    ("POST", "/import", b"nodes: [", 400, "YAML", None),
    ("POST", "/import", b"nodes:\n  n9:\n    profiles: [nosuch]\n", 400, "nosuch", "profiles"),
    ("POST", "/import", b"nodes:\n  n9:\n    flavour: red\n", 400, "flavour", None),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "text", "field"),
    CASES,
    ids=[f"{c[0]} {c[1]} {c[2][:40]!r}" for c in CASES],
)
async def test_bad_input_is_4xx_naming_the_problem(
    api: httpx.AsyncClient,
    seeded: str,
    method: str,
    path: str,
    body: bytes,
    status: int,
    text: str,
    field: str | None,
) -> None:
    headers = {"Content-Type": "application/yaml" if path == "/import" else "application/json"}
    r = await api.request(method, f"{API}{path}", content=body, headers=headers)
    assert r.status_code == status, r.text
    error = r.json()
    assert text in error["error"] or text in (error.get("field") or ""), error
    if field is not None:
        assert error.get("field") == field, error
    await _unchanged(api, seeded)


async def test_ten_mib_body_is_413(api: httpx.AsyncClient, seeded: str) -> None:
    body = b'{"comment": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    r = await api.put(f"{API}/nodes/n2", content=body)
    assert r.status_code == 413
    assert "limit" in r.json()["error"]
    await _unchanged(api, seeded)


async def test_bad_if_match_is_400(api: httpx.AsyncClient, seeded: str) -> None:
    r = await api.put(f"{API}/nodes/n1", json={}, headers={"If-Match": "yesterday"})
    assert r.status_code == 400
    assert r.json()["field"] == "If-Match"
    await _unchanged(api, seeded)
