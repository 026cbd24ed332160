"""overlayd's own settings: the server as nodes see it (address, netmask, DHCP range, NFS
exports) and the host-side commands, read from `DATA/overlayd.yaml` when it exists.

Values only, loaded once at start-up and passed in. `wolfpack up --ip/--dhcp/--dhcp-range`
writes its keys into this file before the services start (libs/runtime/dhcp.py).
"""

from __future__ import annotations

import array
import fcntl
import ipaddress
import socket
import struct
from pathlib import Path
from typing import Annotated, Any, Final

import msgspec
import yaml

from libs.common import names
from libs.common.errors import Invalid
from libs.common.formats.decoding import split_validation_error
from libs.common.formats.yamlerror import yaml_problem
from libs.common.models.fields import meta
from libs.common.models.site import NfsExport, TemplateSettings
from libs.common.security.tls import tls_files
from libs.common.settings import Settings

CONFIG_FILE: Final = "overlayd.yaml"
# Host files templates may read with include_host unless the site lists its own.
DEFAULT_INCLUDE_HOST: Final = ("/etc/passwd", "/etc/group", "/etc/hosts", "/etc/resolv.conf")
HOST_DIR: Final = "host"
# ioctl requests of <linux/sockios.h>: an interface's IPv4 address and netmask.
_SIOCGIFADDR: Final = 0x8915
_SIOCGIFNETMASK: Final = 0x891B


class OverlaydConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """`DATA/overlayd.yaml`; every field optional."""

    ip: Annotated[
        str | None, meta("address nodes reach the server at (default: first non-loopback IPv4)")
    ] = None
    netmask: Annotated[str | None, meta("netmask of the cluster network")] = None
    network: Annotated[str | None, meta("the cluster network (default: from ip and netmask)")] = (
        None
    )
    dhcp_range: Annotated[list[str], meta("[first, last] addresses dnsmasq hands out")] = (
        msgspec.field(default_factory=list)
    )
    dhcp_interface: Annotated[str | None, meta("interface dnsmasq answers DHCP on")] = None
    lease_time: Annotated[str, meta("dnsmasq lease time of the dynamic range")] = "6h"
    nfs_exports: Annotated[list[NfsExport], meta("NFS exports of the server")] = msgspec.field(
        default_factory=list
    )
    update_interval: Annotated[int, meta("seconds between the agent's runtime fetches")] = 60
    secure: Annotated[bool, meta("agents fetch from a privileged port with the asset key")] = True
    dhcp_reload: Annotated[
        str | None,
        meta('shell command after dnsmasq.conf or dhcp-hosts changed, "kill -HUP $(cat PID)"'),
    ] = None
    hosts_reload: Annotated[str | None, meta("shell command after the hosts block changed")] = None
    exports_reload: Annotated[
        str | None, meta('shell command after exports changed, "exportfs -ra"')
    ] = None
    reload_timeout: Annotated[float, meta("seconds a reload command may take")] = 10.0
    include_host: Annotated[
        list[str],
        meta("host files (or folders) templates may read with include_host; replaces the default"),
    ] = msgspec.field(default_factory=lambda: list(DEFAULT_INCLUDE_HOST))


class ServerAddress(msgspec.Struct, frozen=True, kw_only=True):
    ip: str
    netmask: str | None = None


def config_path(data_dir: Path) -> Path:
    return Path(data_dir) / CONFIG_FILE


def load_config(data_dir: Path) -> OverlaydConfig:
    """`DATA/overlayd.yaml` checked (Invalid naming the field), or the defaults."""
    path = config_path(data_dir)
    return parse_config(load_document(path), path)


def load_document(path: Path) -> dict[str, Any]:
    """The YAML mapping in `path` as written ({} if there is no file)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise Invalid(f"{path} is not valid YAML: {yaml_problem(err)}") from None
    if doc is not None and not isinstance(doc, dict):
        raise Invalid(f"{path} must be a mapping of keys to values")
    return doc or {}


def parse_config(doc: dict[str, Any], path: Path) -> OverlaydConfig:
    """`doc` (from `path`, named in errors) as a checked OverlaydConfig."""
    try:
        config = msgspec.convert(doc, OverlaydConfig)
    except msgspec.ValidationError as err:
        message, where = split_validation_error(str(err))
        raise Invalid(f"{path}: {message}", field=where.lstrip(".") or None) from None
    return _checked(config, path)


def _checked(config: OverlaydConfig, path: Path) -> OverlaydConfig:
    where = f"{path}:"
    if config.ip is not None:
        _ipv4(config.ip, where, "ip")
    if config.netmask is not None:
        _network(f"0.0.0.0/{config.netmask}", where, "netmask", config.netmask)
    if config.network is not None:
        _network(config.network, where, "network", config.network)
    if config.dhcp_range:
        if len(config.dhcp_range) != 2:
            raise Invalid(f"{where} dhcp_range must be [first, last]", field="dhcp_range")
        first, last = (_ipv4(a, where, "dhcp_range") for a in config.dhcp_range)
        if first > last:
            raise Invalid(f"{where} dhcp_range starts after it ends", field="dhcp_range")
    if config.update_interval < 1:
        raise Invalid(f"{where} update_interval must be at least 1", field="update_interval")
    for allowed in config.include_host:
        if not allowed.startswith("/") or "\x00" in allowed:
            raise Invalid(
                f"{where} include_host: {allowed!r} is not an absolute path", field="include_host"
            )
    for export in config.nfs_exports:
        if not export.path.startswith("/"):
            raise Invalid(
                f"{where} NFS export {export.path!r} is not absolute", field="nfs_exports"
            )
    return config


def _ipv4(text: str, where: str, field: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        raise Invalid(f"{where} {field}: {text!r} is not an IPv4 address", field=field) from None


def _network(text: str, where: str, field: str, given: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(text, strict=False)
    except ValueError:
        raise Invalid(f"{where} {field}: {given!r} is not an IPv4 {field}", field=field) from None


def host_address() -> ServerAddress:
    """The first non-loopback IPv4 address of this host and its netmask (127.0.0.1 if none)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in sorted(socket.if_nameindex()):
            address = _ioctl_address(sock, name, _SIOCGIFADDR)
            if address is None or address.startswith("127."):
                continue
            return ServerAddress(ip=address, netmask=_ioctl_address(sock, name, _SIOCGIFNETMASK))
    return ServerAddress(ip="127.0.0.1", netmask="255.0.0.0")


def _ioctl_address(sock: socket.socket, interface: str, request: int) -> str | None:
    request_buffer = array.array("B", struct.pack("256s", interface.encode()[:15]))
    try:
        fcntl.ioctl(sock.fileno(), request, request_buffer)
    except OSError:  # no IPv4 address on this interface
        return None
    return socket.inet_ntoa(request_buffer.tobytes()[20:24])


def server_address(config: OverlaydConfig) -> ServerAddress:
    if config.ip:
        return ServerAddress(ip=config.ip, netmask=config.netmask)
    found = host_address()
    return ServerAddress(ip=found.ip, netmask=config.netmask or found.netmask)


def include_host_paths(config: OverlaydConfig) -> list[Path]:
    """What include_host may read (the API token never, whatever this says)."""
    return [Path(path) for path in config.include_host]


def template_settings(config: OverlaydConfig, settings: Settings) -> TemplateSettings:
    """`settings` in templates: the configured (or found) address, ports with their offset."""
    address = server_address(config)
    network = None
    if config.network is not None:  # "10.0.0.0" or "10.0.0.0/16": the address part
        network = str(ipaddress.IPv4Network(config.network, strict=False).network_address)
    elif address.netmask:
        found = ipaddress.IPv4Network(f"{address.ip}/{address.netmask}", strict=False)
        network = str(found.network_address)
    return TemplateSettings(
        ip=address.ip,
        ports={service: settings.port(service) for service in names.PORTS},
        netmask=address.netmask,
        network=network,
        dhcp_range=list(config.dhcp_range),
        nfs_exports=list(config.nfs_exports),
        update_interval=config.update_interval,
        secure=config.secure,
        **_tls_settings(settings, address.ip),
    )


def _tls_settings(settings: Settings, ip: str) -> dict[str, Any]:
    """bootd's HTTPS port and our CA under --tls, when bootd's certificate names `ip`, the
    address nodes use; otherwise (say, compose without that --tls-name) the agent stays on
    plain HTTP, as it did before, rather than failing every fetch."""
    if not settings.tls:
        return {}
    from libs.common.security.x509 import cert_names  # cryptography: only under --tls

    files = tls_files(settings.data_dir)
    try:
        ca = files.ca.read_text()
        named = cert_names(files.cert.read_bytes())
    except (OSError, ValueError):
        return {}
    if ip not in named:
        return {}
    return {"bootd_tls_port": names.BOOTD_TLS_PORT + settings.port_offset, "ca_pem": ca}
