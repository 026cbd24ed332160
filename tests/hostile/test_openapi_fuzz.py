"""schemathesis against every service's OpenAPI on a real `wolfpack up`, with the token:
no 5xx, every answer as documented, every 4xx a JSON error body naming the problem.

One operation is left out of positive fuzzing: `POST /api/v1/images` with a valid body starts
a real image import (a `docker://` pull from the network, or an import of a host directory
that takes minutes). Its negative cases run (a schema-violating body is refused before any
import starts); a case whose body would decode as an ImportRequest is not sent.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Final

import httpx
import msgspec
import pytest
from schemathesis import Case

from libs.common.models.image import ImportRequest
from libs.common.nodes.defaults import default_profile
from libs.common.store.cas import ContentStore
from tests.hostile.hostile_openapi import Report, Seed, fuzz_service
from tests.stack import UpStack

# Per operation and generation mode; the four services run in well under 3 minutes on 2 cores.
EXAMPLES: Final = 50
NODE: Final = "n1"
MAC: Final = "52:54:00:aa:00:01"
OVERLAY: Final = "site"
TEMPLATE: Final = "etc/motd.j2"
BLOB: Final = b"a blob bootd may serve\n"
DIGEST: Final = hashlib.sha256(BLOB).hexdigest()

SEEDS: Final = {
    "registry": [Seed(path={"name": NODE}), Seed(path={"name": "default"})],
    "builder": [],
    "overlayd": [
        Seed(path={"name": OVERLAY}),
        Seed(path={"name": OVERLAY, "path": TEMPLATE}),
        Seed(path={"name": OVERLAY}, query={"render": NODE}),
        Seed(path={"name": NODE}),
    ],
    "bootd": [Seed(path={"mac": MAC}), Seed(path={"digest": DIGEST})],
}


def no_import(case: Case) -> str | None:
    """Refuse to send an image import the builder would start for real."""
    if case.operation.method.upper() != "POST" or case.operation.path != "/api/v1/images":
        return None
    try:
        msgspec.convert(case.body, ImportRequest)
    except (msgspec.ValidationError, TypeError):
        return None
    return "a valid import would fetch an image"


def seeder(up: UpStack) -> dict[str, Callable[[], None]]:
    """Per service, a function that puts the seeded objects back (fuzzing deletes them)."""
    headers = {"Authorization": f"Bearer {up.token}"}
    device = {"ipaddr": "10.0.0.1", "netmask": "255.255.0.0", "hwaddr": MAC}

    def registry() -> None:
        with httpx.Client(base_url=f"{up.registry_url}/api/v1", headers=headers) as api:
            profile = msgspec.to_builtins(default_profile())
            api.put("/profiles/default", json=profile, headers={"If-None-Match": "*"})
            node = {"profiles": ["default"], "network_devices": {"default": device}}
            api.put(f"/nodes/{NODE}", json=node)

    def overlayd() -> None:
        registry()
        with httpx.Client(base_url=f"{up.url('overlayd')}/api/v1", headers=headers) as api:
            api.post("/overlays", json={"name": OVERLAY, "empty": True})
            api.put(f"/overlays/{OVERLAY}/files/{TEMPLATE}", content=b"{{ node.name }}\n")

    def bootd() -> None:
        registry()
        asyncio.run(ContentStore(Path(up.data) / "cas").put_bytes(BLOB))

    return {"registry": registry, "builder": lambda: None, "overlayd": overlayd, "bootd": bootd}


@pytest.mark.parametrize("service", ["registry", "builder", "overlayd", "bootd"])
def test_openapi_fuzz(up: UpStack, service: str, capsys: pytest.CaptureFixture[str]) -> None:
    reseed = seeder(up)[service]
    report: Report = fuzz_service(
        service,
        up.url(service),
        up.token,
        examples=EXAMPLES,
        seeds=SEEDS[service],
        reseed=reseed,
        guard=no_import,
    )
    with capsys.disabled():
        print(
            f"\nschemathesis {service}: {report.cases} cases run, {report.server_errors} 5xx, "
            f"{len(report.failures)} failing operations, {report.guarded} imports not sent"
        )
    assert report.cases > 0
    assert not report.failures, "\n\n".join(f"== {k}\n{v}" for k, v in report.failures.items())
    assert report.server_errors == 0
