"""DATA/tls: the private CA and the server certificate, checked by real TLS handshakes."""

from __future__ import annotations

import asyncio
import multiprocessing
import ssl
import stat
from pathlib import Path

import pytest

from libs.common.errors import Invalid
from libs.common.security import x509
from libs.common.security.tls import (
    TlsState,
    check_name,
    client_context,
    ensure_tls,
    server_context,
    tls_files,
    wanted_names,
)

NAMES = wanted_names("127.0.0.1")


async def handshake(state: TlsState, server_name: str, ca: Path | None = None) -> None:
    """Serve with the certificate on 127.0.0.1, connect as `server_name`, verifying with
    `ca` (default: the CA of `state`); raises if the client refuses."""
    server = await asyncio.start_server(
        lambda r, w: w.close(), "127.0.0.1", 0, ssl=server_context(state.files)
    )
    port = server.sockets[0].getsockname()[1]
    try:
        _, writer = await asyncio.open_connection(
            "127.0.0.1",
            port,
            ssl=client_context(ca or state.files.ca),
            server_hostname=server_name,
        )
        writer.close()
    finally:
        server.close()
        await server.wait_closed()


def test_first_start_makes_a_ca_and_a_certificate_with_private_keys(data_dir: Path) -> None:
    state = ensure_tls(data_dir, NAMES)
    assert state.ca_created and state.cert_issued
    files = state.files
    for path, mode in ((files.ca_key, 0o600), (files.key, 0o600), (files.ca, 0o644)):
        assert stat.S_IMODE(path.stat().st_mode) == mode, path
    assert {"localhost", "127.0.0.1", "::1"} <= set(state.names)


async def test_the_certificate_is_trusted_through_the_ca_for_its_names_only(
    data_dir: Path, tmp_path: Path
) -> None:
    state = ensure_tls(data_dir, NAMES)
    await handshake(state, "localhost")
    await handshake(state, "127.0.0.1")
    with pytest.raises(ssl.SSLCertVerificationError):
        await handshake(state, "elsewhere.example")
    other = ensure_tls(tmp_path / "other", NAMES)
    with pytest.raises(ssl.SSLCertVerificationError):
        await handshake(state, "localhost", ca=other.files.ca)


def test_a_second_start_reuses_the_ca_and_the_certificate(data_dir: Path) -> None:
    first = ensure_tls(data_dir, NAMES)
    ca, cert = first.files.ca.read_bytes(), first.files.cert.read_bytes()
    again = ensure_tls(data_dir, NAMES)
    assert not again.ca_created and not again.cert_issued
    assert first.files.ca.read_bytes() == ca and first.files.cert.read_bytes() == cert


async def test_a_new_name_issues_a_new_certificate_from_the_same_ca(data_dir: Path) -> None:
    first = ensure_tls(data_dir, NAMES)
    ca = first.files.ca.read_bytes()
    moved = ensure_tls(data_dir, wanted_names("127.0.0.1", ip="10.9.8.7", extra=["Head.Example"]))
    assert moved.cert_issued and not moved.ca_created
    assert first.files.ca.read_bytes() == ca
    assert {"10.9.8.7", "head.example"} | set(first.names) <= set(moved.names)
    assert x509.key_matches(moved.files.key.read_bytes(), moved.files.cert.read_bytes())
    await handshake(moved, "head.example")


@pytest.mark.parametrize("written", ["key", "cert"])
async def test_a_crash_between_writing_key_and_certificate_heals_at_the_next_start(
    data_dir: Path, written: str
) -> None:
    first = ensure_tls(data_dir, [*NAMES, "kept.example"])
    files = first.files
    # What a crash between the two renames leaves: one half of a new pair beside the other
    # half of the old one.
    key, cert = x509.new_server_cert(
        files.ca_key.read_bytes(), files.ca.read_bytes(), sorted(first.names)
    )
    if written == "key":
        files.key.write_bytes(key)
    else:
        files.cert.write_bytes(cert)
    again = ensure_tls(data_dir, NAMES)
    assert again.cert_issued and not again.ca_created
    assert x509.key_matches(files.key.read_bytes(), files.cert.read_bytes())
    assert first.names <= again.names
    await handshake(again, "kept.example")


def test_an_unreadable_key_issues_a_new_pair(data_dir: Path) -> None:
    state = ensure_tls(data_dir, NAMES)
    state.files.key.write_bytes(b"")
    assert ensure_tls(data_dir, NAMES).cert_issued
    assert x509.key_matches(state.files.key.read_bytes(), state.files.cert.read_bytes())


def test_without_the_ca_key_no_certificate_can_be_issued(data_dir: Path) -> None:
    state = ensure_tls(data_dir, NAMES)
    state.files.ca_key.unlink()
    ensure_tls(data_dir, NAMES)  # nothing to issue: fine without the key
    with pytest.raises(Invalid, match=r"ca\.key is missing"):
        ensure_tls(data_dir, [*NAMES, "new.example"])


def test_names_are_checked() -> None:
    assert check_name("Head.Example.") == "head.example"
    assert check_name("::0001") == "::1"
    for bad in ("under_score", "-dash.example", "a..b", "x" * 64):
        with pytest.raises(Invalid) as err:
            check_name(bad)
        assert err.value.field == "tls_names"
    with pytest.raises(Invalid) as err:
        wanted_names("not an address")
    assert err.value.field == "bind"


def _ensure(data_dir: Path) -> bytes:
    ensure_tls(data_dir, NAMES)
    files = tls_files(data_dir)
    assert x509.key_matches(files.key.read_bytes(), files.cert.read_bytes())
    return files.ca.read_bytes()


def test_services_starting_at_once_agree_on_one_ca(data_dir: Path) -> None:
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        cas = pool.map(_ensure, [data_dir] * 8)
    assert len(set(cas)) == 1
    files = tls_files(data_dir)
    assert x509.still_good(files.cert.read_bytes(), cas[0], NAMES, margin_days=30)
