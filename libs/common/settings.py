"""Runtime settings: values only. Loading them from flags or the environment lives in the CLI."""

from __future__ import annotations

from pathlib import Path

import msgspec

from libs.common import names


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

    @property
    def data_dir(self) -> Path:
        return Path(self.data)

    @property
    def cas_dir(self) -> Path:
        return self.data_dir / "cas"

    @property
    def token_path(self) -> Path:
        return self.data_dir / names.TOKEN_FILE

    def port(self, service: str) -> int:
        return names.PORTS[service] + self.port_offset
