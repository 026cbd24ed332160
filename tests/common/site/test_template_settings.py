"""What overlayd tells nodes about bootd's HTTPS port under --tls: the port and our CA, but only
when bootd's certificate names the address nodes reach it at (else a node's agent, checking the
name, would fail every fetch; it stays on plain HTTP instead)."""

from __future__ import annotations

from pathlib import Path

from libs.common import names
from libs.common.security.tls import ensure_tls, tls_files
from libs.common.settings import Settings
from libs.common.site.config import OverlaydConfig, template_settings


def test_the_ca_and_port_go_to_nodes_when_the_certificate_names_their_address(
    tmp_path: Path,
) -> None:
    ensure_tls(tmp_path, ["localhost", "10.5.0.1"])
    settings = Settings(data=str(tmp_path), tls=True, port_offset=3)
    found = template_settings(OverlaydConfig(ip="10.5.0.1"), settings)
    assert found.bootd_tls_port == names.BOOTD_TLS_PORT + 3
    assert found.ca_pem == tls_files(tmp_path).ca.read_text()


def test_nothing_when_the_certificate_does_not_name_it(tmp_path: Path) -> None:
    ensure_tls(tmp_path, ["localhost"])
    settings = Settings(data=str(tmp_path), tls=True)
    found = template_settings(OverlaydConfig(ip="10.5.0.1"), settings)
    assert (found.bootd_tls_port, found.ca_pem) == (None, "")


def test_nothing_without_tls_or_before_the_ca_exists(tmp_path: Path) -> None:
    config = OverlaydConfig(ip="10.5.0.1")
    assert template_settings(config, Settings(data=str(tmp_path), tls=True)).ca_pem == ""
    ensure_tls(tmp_path, ["10.5.0.1"])
    assert template_settings(config, Settings(data=str(tmp_path))).ca_pem == ""
