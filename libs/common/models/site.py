"""The server as nodes and templates see it (`settings` in templates): its address and
ports, the cluster network, NFS exports, the agent's interval. Made from DATA/overlayd.yaml
and the runtime settings by libs/common/site/config.py."""

from __future__ import annotations

import msgspec

from libs.common import names


class NfsExport(msgspec.Struct, kw_only=True, frozen=True):
    path: str
    export_options: str = "rw,sync,no_root_squash"
    mount_options: str = "defaults"
    mount: bool = True


class TemplateSettings(msgspec.Struct, kw_only=True, frozen=True):
    """`settings` in templates: the server as nodes see it."""

    ip: str = "127.0.0.1"  # the address nodes reach the server at
    ports: dict[str, int] = msgspec.field(default_factory=lambda: dict(names.PORTS))
    netmask: str | None = None
    network: str | None = None
    dhcp_range: list[str] = msgspec.field(default_factory=list)  # [first, last]
    nfs_exports: list[NfsExport] = msgspec.field(default_factory=list)
    update_interval: int = 60  # the agent's interval; node tag `agent.interval` overrides
    secure: bool = True
    # Under `--tls`: bootd's HTTPS port and the CA certificate (PEM) that signed its
    # certificate, so the node agent can fetch its runtime overlay over HTTPS.
    bootd_tls_port: int | None = None
    ca_pem: str = ""
