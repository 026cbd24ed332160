"""Node and profile, with Warewulf 4 nodes.conf semantics (see DESIGN.md, "Data model").

A scalar left `None` is unset: it inherits through merging. Lists and maps default to empty.
Sub-structures (kernel, ipmi, network devices, disks, partitions, filesystems) merge field by
field, so every field of every struct here is optional.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from libs.common.models.fields import meta

Str = str | None


class _Part(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    """Base of every model part: keyword-only, unknown fields refused, defaults omitted."""


class Kernel(_Part):
    version: Annotated[
        Str, meta("kernel version to boot", flag="kernelversion", scope="kernel")
    ] = None
    args: Annotated[
        list[str], meta("kernel arguments", flag="kernelargs", short="A", scope="kernel")
    ] = msgspec.field(default_factory=list)


class IPMI(_Part):
    ipaddr: Annotated[Str, meta("IPMI IPv4 address", flag="ipmiaddr", scope="ipmi")] = None
    netmask: Annotated[Str, meta("IPMI netmask", flag="ipminetmask", scope="ipmi")] = None
    gateway: Annotated[Str, meta("IPMI gateway", flag="ipmigateway", scope="ipmi")] = None
    username: Annotated[Str, meta("IPMI user name", flag="ipmiuser", scope="ipmi")] = None
    password: Annotated[Str, meta("IPMI password", flag="ipmipass", scope="ipmi", secret=True)] = (
        None
    )
    port: Annotated[Str, meta("IPMI port", flag="ipmiport", scope="ipmi")] = None
    interface: Annotated[
        Str, meta("IPMI interface (default lan)", flag="ipmiinterface", scope="ipmi")
    ] = None
    escapechar: Annotated[
        Str, meta("IPMI escape character (default ~)", flag="ipmiescapechar", scope="ipmi")
    ] = None
    write: Annotated[
        bool | None, meta("write IPMI configuration at boot", flag="ipmiwrite", scope="ipmi")
    ] = None
    template: Annotated[
        Str, meta("template used for IPMI commands", flag="ipmitemplate", scope="ipmi")
    ] = None
    tags: Annotated[dict[str, str], meta("IPMI tags")] = msgspec.field(default_factory=dict)


class NetDev(_Part):
    type: Annotated[
        Str,
        meta("device type (ethernet, infiniband, bond, vlan)", flag="type", short="T", scope="net"),
    ] = None
    onboot: Annotated[
        bool | None, meta("bring the device up at boot", flag="onboot", scope="net")
    ] = None
    device: Annotated[
        Str, meta("the device name (eth0, ib0)", flag="netdev", short="N", scope="net")
    ] = None
    hwaddr: Annotated[Str, meta("MAC address", flag="hwaddr", short="H", scope="net")] = None
    ipaddr: Annotated[Str, meta("IPv4 address", flag="ipaddr", short="I", scope="net")] = None
    netmask: Annotated[Str, meta("IPv4 netmask", flag="netmask", short="M", scope="net")] = None
    gateway: Annotated[Str, meta("IPv4 gateway", flag="gateway", short="G", scope="net")] = None
    ipaddr6: Annotated[Str, meta("IPv6 address", flag="ipaddr6", scope="net")] = None
    prefixlen6: Annotated[
        int | None, meta("IPv6 prefix length", flag="prefixlen6", scope="net")
    ] = None
    gateway6: Annotated[Str, meta("IPv6 gateway", flag="gateway6", scope="net")] = None
    mtu: Annotated[int | None, meta("MTU", flag="mtu", scope="net")] = None
    tags: Annotated[dict[str, str], meta("network tags")] = msgspec.field(default_factory=dict)


class Partition(_Part):
    number: Annotated[int | None, meta("partition number (next free if unset)")] = None
    size_mib: Annotated[int | None, meta("size in MiB (all free space if unset)")] = None
    start_mib: Annotated[int | None, meta("start in MiB")] = None
    type_guid: Annotated[Str, meta("partition type GUID")] = None
    guid: Annotated[Str, meta("GPT unique partition GUID")] = None
    wipe_partition_entry: Annotated[bool | None, meta("clobber a mismatching partition")] = None
    should_exist: Annotated[bool | None, meta("create the partition if missing")] = None
    resize: Annotated[bool | None, meta("resize an existing partition")] = None


class Disk(_Part):
    wipe_table: Annotated[bool | None, meta("wipe the partition table")] = None
    partitions: Annotated[dict[str, Partition], meta("partitions by label")] = msgspec.field(
        default_factory=dict
    )


class Filesystem(_Part):
    format: Annotated[Str, meta("file system format (ext4, xfs, btrfs, swap)")] = None
    path: Annotated[Str, meta("mount point")] = None
    wipe_filesystem: Annotated[bool | None, meta("wipe the file system at boot")] = None
    label: Annotated[Str, meta("file system label")] = None
    uuid: Annotated[Str, meta("file system UUID")] = None
    options: Annotated[list[str], meta("options for mkfs")] = msgspec.field(default_factory=list)
    mount_options: Annotated[Str, meta("mount options")] = None


class ProfileFields(_Part):
    """What a profile and a node may both set."""

    profiles: Annotated[
        list[str],
        meta("profiles applied in order (nested profiles first)", flag="profile", short="P"),
    ] = msgspec.field(default_factory=list)
    comment: Annotated[Str, meta("free-form comment", flag="comment")] = None
    cluster_name: Annotated[
        Str, meta("cluster group", ww="cluster name", flag="cluster", short="c")
    ] = None
    image: Annotated[Str, meta("image to boot", ww="image name", flag="image")] = None
    ipxe_template: Annotated[Str, meta("iPXE template name", ww="ipxe template", flag="ipxe")] = (
        None
    )
    init: Annotated[Str, meta("init the image hands over to", flag="init", short="i")] = None
    root: Annotated[Str, meta("root file system (initramfs, tmpfs)", flag="root")] = None
    kernel: Annotated[Kernel | None, meta("kernel to boot and its arguments")] = None
    system_overlay: Annotated[
        list[str], meta("system overlays", ww="system overlay", flag="system-overlays", short="O")
    ] = msgspec.field(default_factory=list)
    runtime_overlay: Annotated[
        list[str],
        meta("runtime overlays", ww="runtime overlay", flag="runtime-overlays", short="R"),
    ] = msgspec.field(default_factory=list)
    primary_network: Annotated[
        Str, meta("primary network device name", ww="primary network", flag="primarynet", short="p")
    ] = None
    network_devices: Annotated[
        dict[str, NetDev], meta("network devices by network name", ww="network devices")
    ] = msgspec.field(default_factory=dict)
    ipmi: Annotated[IPMI | None, meta("IPMI / BMC settings")] = None
    tags: Annotated[dict[str, str], meta("free-form tags")] = msgspec.field(default_factory=dict)
    disks: Annotated[dict[str, Disk], meta("disks by device path")] = msgspec.field(
        default_factory=dict
    )
    filesystems: Annotated[dict[str, Filesystem], meta("file systems by device path")] = (
        msgspec.field(default_factory=dict)
    )
    resources: Annotated[dict[str, Any], meta("free-form resources (fstab, ...)")] = msgspec.field(
        default_factory=dict
    )


class Profile(ProfileFields):
    """A named set of defaults that nodes (and other profiles) inherit."""

    name: Annotated[str, meta("profile name (hostname label)")] = ""
    revision: Annotated[int, meta("store revision; send it back in If-Match")] = 0


class Node(ProfileFields):
    """One cluster node: its own settings, layered over its profiles."""

    discoverable: Annotated[
        bool | None,
        meta("may claim the MAC of an unknown booting node", flag="discoverable", short="e"),
    ] = None
    asset_key: Annotated[
        Str, meta("asset tag the node must present", ww="asset key", flag="asset", secret=True)
    ] = None
    name: Annotated[str, meta("node name (hostname label)")] = ""
    revision: Annotated[int, meta("store revision; send it back in If-Match")] = 0


MODEL_PARTS: tuple[type[msgspec.Struct], ...] = (
    Kernel,
    IPMI,
    NetDev,
    Partition,
    Disk,
    Filesystem,
    ProfileFields,
    Profile,
    Node,
)
