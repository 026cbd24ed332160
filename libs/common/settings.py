"""Runtime settings: values only. Loading them from flags or the environment lives in the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import msgspec

from libs.common import names
from libs.common.bus.retention import DEFAULT_MAX_AGE, DEFAULT_MAX_BYTES, Retention

# tftpd's transfers at once, for the whole server: the most one client may be let hold.
TFTP_TRANSFERS: Final = 512


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    data: str = names.DEFAULT_DATA
    nats_url: str = f"nats://127.0.0.1:{names.NATS_PORT}"
    # Address the HTTP and TFTP servers bind to.
    bind: str = "0.0.0.0"
    # Added to every default port (lets several stacks or test runs share one host).
    port_offset: int = 0
    # Reads of the registry API without a token.
    public_read: bool = False
    log_level: str = "info"
    # bootd: kernels and images sent at once; more wait (503, Retry-After). 0: no limit.
    max_transfers: int = 64
    # HTTPS with DATA/tls (bootd: plain HTTP for nodes, HTTPS on names.BOOTD_TLS_PORT).
    tls: bool = False
    # More names (DNS or IP) the server certificate must cover.
    tls_names: tuple[str, ...] = ()
    # bootd: runtime overlays only to privileged source ports (docs/boot.md).
    bootd_secure: bool = True
    # bootd: seconds a node may take to accept each piece of a blob (services.bootd.stalls).
    bootd_stall_seconds: float = 60.0
    # tftpd: transfers one client address may hold at once, 1 to TFTP_TRANSFERS.
    tftp_per_client: int = 16
    # tftpd: the folder to serve (None: DATA/tftp, filled from the ipxe package).
    tftp_root: str | None = None
    # The WOLFPACK stream keeps events this many seconds and at most this many bytes (0: no
    # such limit); each service sets them on the stream as it connects.
    events_max_age: float = DEFAULT_MAX_AGE
    events_max_bytes: int = DEFAULT_MAX_BYTES

    @property
    def data_dir(self) -> Path:
        return Path(self.data)

    @property
    def cas_dir(self) -> Path:
        return self.data_dir / "cas"

    @property
    def token_path(self) -> Path:
        return self.data_dir / names.TOKEN_FILE

    @property
    def events_retention(self) -> Retention:
        return Retention(max_age=self.events_max_age, max_bytes=self.events_max_bytes)

    def port(self, service: str) -> int:
        return names.PORTS[service] + self.port_offset
