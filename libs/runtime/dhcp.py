"""dnsmasq as a child of `wolfpack up`, and what `up`'s network flags tell overlayd.

overlayd renders the DHCP configuration: DATA/host/dnsmasq.conf, with the static leases in
DATA/host/dhcp-hosts. `up` hands it the flags by writing their keys into DATA/overlayd.yaml
(keys set by hand stay; the file is rewritten only when a value changes), writes the main file
itself before dnsmasq starts (it names no node, so it needs no registry and overlayd renders the
same text), and sets `dhcp_reload` to a SIGHUP of the dnsmasq it supervises. On SIGHUP dnsmasq
re-reads dhcp-hosts (not its main file), so a node added or readdressed gets its lease with no
restart.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Final

import yaml

from libs.common.errors import Invalid
from libs.common.settings import Settings
from libs.common.site.config import config_path, load_document, parse_config, template_settings
from libs.common.site.hostconfig import HostConfig, write_atomically
from libs.runtime.network import ServerNetwork
from libs.runtime.supervisor import Child

NAME: Final = "dnsmasq"
# DATA/dnsmasq: dnsmasq's own pid and lease files.
STATE_DIR: Final = "dnsmasq"
CONFIG_HEADER: Final = (
    "# overlayd's settings (libs/common/site/config.py). `wolfpack up --ip/--dhcp/--dhcp-range`\n"
    "# rewrites the keys it sets and keeps the others (comments are not kept).\n"
)


def reload_command(run_dir: Path) -> str:
    """SIGHUP to the dnsmasq `up` supervises, whose pid the supervisor keeps in `run_dir`."""
    pid = shlex.quote(str((run_dir / f"{NAME}.pid").resolve()))
    # No pid file: dnsmasq is between restarts, and reads the files as it starts.
    return f'pid=$(cat {pid} 2>/dev/null) || exit 0; kill -HUP "$pid"'


def dnsmasq_argv(binary: str, conf: Path, state: Path, interface: str) -> list[str]:
    return [
        binary,
        "--keep-in-foreground",
        "--log-facility=-",  # to stderr: the supervisor passes it on
        "--port=0",  # DHCP only, whatever the file says
        f"--conf-file={conf}",  # and not /etc/dnsmasq.conf
        f"--interface={interface}",
        f"--pid-file={state / 'dnsmasq.pid'}",
        f"--dhcp-leasefile={state / 'dnsmasq.leases'}",
        # Stay root: after a SIGHUP dnsmasq re-reads dhcp-hosts as the user it runs as, and
        # `nobody` cannot read a private DATA folder (then every node would get a dynamic lease).
        "--user=root",
    ]


def configure(
    settings: Settings, network: ServerNetwork | None, reload: str | None
) -> Child | None:
    """Write the flags' keys into overlayd.yaml; with --dhcp, dnsmasq's main file too, and
    return the dnsmasq child to run. `reload` is the command overlayd runs after the leases
    change (up's SIGHUP); None where the dnsmasq's keeper watches the files itself (`wolfpack
    dhcp`). Invalid if overlayd.yaml is broken."""
    data = settings.data_dir
    path = config_path(data)
    doc = load_document(path)
    wanted = dict(doc)
    if network is not None:
        wanted["ip"] = network.ip
        if network.netmask is not None:
            wanted["netmask"] = network.netmask
    if network is not None and network.dhcp_interface is not None:
        wanted |= {
            "dhcp_interface": network.dhcp_interface,
            "dhcp_range": list(network.dhcp_range),
        }
        if reload is not None:
            wanted["dhcp_reload"] = reload
        else:
            wanted.pop("dhcp_reload", None)  # nothing for overlayd to signal across containers
    elif reload is not None and wanted.get("dhcp_reload") == reload:
        del wanted["dhcp_reload"]  # no dnsmasq of ours to signal this time
    config = parse_config(wanted, path)  # checked before it is written
    if wanted != doc:
        write_atomically(path, CONFIG_HEADER + yaml.safe_dump(wanted, sort_keys=False))
    if network is None or network.dhcp_interface is None:
        return None
    if network.dnsmasq is None:
        raise Invalid("--dhcp: no dnsmasq binary given", field="dhcp")
    host = HostConfig(data, template_settings(config, settings), config)
    host.write_dhcp_config()
    state = data.resolve() / STATE_DIR
    state.mkdir(exist_ok=True)
    argv = dnsmasq_argv(network.dnsmasq, host.dnsmasq_conf, state, network.dhcp_interface)
    return Child(name=NAME, argv=argv)


def describe(network: ServerNetwork) -> str:
    """One line for `up`'s summary."""
    served = "-".join(network.dhcp_range) if network.dhcp_range else "static leases only"
    return f"dnsmasq on {network.dhcp_interface} ({served}), nodes reach {network.ip}"
