"""`DATA/endpoints.json`: where `wolfpack up` put each service, so wolfctl can find them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

import msgspec

FILE: Final = "endpoints.json"


class Endpoints(msgspec.Struct, kw_only=True):
    # NATS server URL, e.g. nats://127.0.0.1:4222.
    nats: str
    # Service name → base URL, e.g. {"registry": "http://127.0.0.1:9870"}.
    services: dict[str, str]
    token_file: str
    # The CA that signed the services' certificates (`wolfpack up --tls`), else None.
    ca_file: str | None = None
    # Other URLs of the same NATS server, where some services reach it by another address
    # (compose's host-networked tftpd and bootd: nats://127.0.0.1:4222 for nats://nats:4222).
    nats_aliases: list[str] = []


def write_endpoints(data_dir: Path, endpoints: Endpoints) -> Path:
    """Write atomically: a reader sees the old file or the new one, never half of one."""
    path = data_dir / FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(msgspec.json.format(msgspec.json.encode(endpoints)) + b"\n")
    os.replace(tmp, path)
    return path


def read_endpoints(data_dir: Path) -> Endpoints:
    return msgspec.json.decode((data_dir / FILE).read_bytes(), type=Endpoints)
