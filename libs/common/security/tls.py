"""`--tls`: a private CA and a server certificate in DATA/tls, made at first start.

DATA/tls/ca.pem is what clients trust (wolfctl finds it through DATA/endpoints.json or
$WOLFPACK_CA); ca.key and server.key are mode 0600. The CA is kept for good; the server
certificate is issued again when it lacks a name this start wants, is signed by another CA,
expires within a month, or does not match server.key (a crash between writing the two). It
then covers the names it had plus the wanted ones, so starts that want different names (a
container's own host name) converge instead of taking turns.

Writers hold an exclusive lock on DATA/tls/.lock, readers of the key pair a shared one, so a
service never loads a key with another certificate. flock works across containers sharing a
local volume, not across NFS clients.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from libs.common.errors import Invalid
from libs.common.fs.atomicfile import write_atomic
from libs.common.fs.filelock import file_lock

TLS_DIR: Final = "tls"
# Renew the server certificate at a start when it has less than this left.
RENEW_DAYS: Final = 30
DEFAULT_NAMES: Final = ("localhost", "127.0.0.1", "::1")
WILDCARDS: Final = ("", "0.0.0.0", "::")
LABEL: Final = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


@dataclass(frozen=True)
class TlsFiles:
    dir: Path

    @property
    def ca(self) -> Path:
        return self.dir / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.dir / "ca.key"

    @property
    def cert(self) -> Path:
        return self.dir / "server.pem"

    @property
    def key(self) -> Path:
        return self.dir / "server.key"


@dataclass(frozen=True)
class TlsState:
    """What `ensure_tls` found or made."""

    files: TlsFiles
    ca_created: bool
    cert_issued: bool
    names: frozenset[str]


def tls_files(data_dir: Path) -> TlsFiles:
    return TlsFiles(Path(data_dir) / TLS_DIR)


def check_name(name: str, field: str = "tls_names") -> str:
    """A DNS name or an IP address in canonical form; Invalid names what is wrong."""
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        pass
    host = name.rstrip(".").lower()
    if len(host) > 253 or not host or not all(LABEL.fullmatch(p) for p in host.split(".")):
        raise Invalid(f"{name!r} is not a host name or an IP address", field=field)
    return host


def wanted_names(bind: str, ip: str | None = None, extra: Sequence[str] = ()) -> list[str]:
    """What the certificate must cover: this host by every local name, the bind address if
    it is one, the address nodes and other hosts use (`--ip`), and any `--tls-name`."""
    found = [*DEFAULT_NAMES]
    with contextlib.suppress(Invalid):  # a host name that is no DNS name is left out
        found.append(check_name(socket.gethostname()))
    if bind not in WILDCARDS:
        found.append(check_name(bind, "bind"))
    if ip:
        found.append(check_name(ip, "ip"))
    found += [check_name(n) for n in extra]
    return list(dict.fromkeys(found))


def locked(files: TlsFiles, exclusive: bool) -> contextlib.AbstractContextManager[None]:
    files.dir.mkdir(parents=True, exist_ok=True)
    return file_lock(files.dir / ".lock", exclusive)


def _readable_cert(files: TlsFiles) -> bytes | None:
    """server.pem, if it is there and a certificate."""
    from libs.common.security import x509

    try:
        have = files.cert.read_bytes()
        x509.cert_names(have)
    except (FileNotFoundError, ValueError):
        return None
    return have


def _key_matches(files: TlsFiles, cert: bytes) -> bool:
    """Does server.key hold the key of `cert`? Not after a crash between writing the two."""
    from libs.common.security import x509

    try:
        return x509.key_matches(files.key.read_bytes(), cert)
    except (FileNotFoundError, ValueError, TypeError):  # no key, not PEM, has a password
        return False


def ensure_tls(data_dir: Path, names: Sequence[str]) -> TlsState:
    """The CA (made if missing) and a server certificate covering `names` (issued if needed)."""
    # Imported here: `cryptography` takes ~50 ms to load, which a client trusting ca.pem
    # (wolfctl) need not pay.
    from libs.common.security import x509

    files = tls_files(data_dir)
    with locked(files, exclusive=True):
        ca_created = not files.ca.exists()
        if ca_created:
            ca_key, ca_cert = x509.new_ca(f"wolfpack CA {socket.gethostname()}")
            write_atomic(files.ca_key, ca_key)
            write_atomic(files.ca, ca_cert, 0o644)
        ca_cert = files.ca.read_bytes()
        have = None if ca_created else _readable_cert(files)
        reusable = have is not None and _key_matches(files, have)
        if have is not None and reusable and x509.still_good(have, ca_cert, names, RENEW_DAYS):
            return TlsState(files, False, False, frozenset(x509.cert_names(have)))
        if not files.ca_key.exists():
            raise Invalid(
                f"{files.ca_key} is missing, so no server certificate can be issued: restore it, "
                f"or delete {files.ca} to make a new CA (clients must then trust the new one)"
            )
        kept = x509.cert_names(have) if have is not None else set()
        covered = list(dict.fromkeys([*names, *sorted(kept - set(names))]))
        key, cert = x509.new_server_cert(files.ca_key.read_bytes(), ca_cert, covered)
        # Two renames, so a crash between them can leave a new key beside the old certificate
        # (or, on a file system that reorders them, the other way round): the next start finds
        # the pair does not match (_key_matches) and issues it again.
        write_atomic(files.key, key)
        write_atomic(files.cert, cert, 0o644)
        return TlsState(files, ca_created, True, frozenset(covered))


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """The TLS context a service serves with (TLS 1.2 or later)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    with locked(files, exclusive=False):
        context.load_cert_chain(files.cert, files.key)
    return context


def client_context(ca: Path) -> ssl.SSLContext:
    """A context that trusts the certificates `ca` signed (and only those)."""
    try:
        return ssl.create_default_context(cafile=str(ca))
    except (OSError, ssl.SSLError) as exc:
        raise Invalid(f"cannot use {ca} as the CA to trust: {exc}", field="ca") from None
