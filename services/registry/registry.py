"""The node registry: nodes and profiles with Warewulf semantics, validated, merged, and stored
with optimistic concurrency. Pure domain logic over two collections; no HTTP here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any

import msgspec

from libs.common.errors import Conflict, Invalid
from libs.common.models.api import BulkAdd, BulkResult, ImportResult, MergedNode, MergedProfile
from libs.common.models.node import IPMI, NetDev, Node, Profile
from libs.common.nodes import merge, nodesconf, ranges, validate
from libs.common.nodes.defaults import DEFAULT_PROFILE_NAME, default_profile
from libs.common.nodes.mergepatch import apply_merge_patch
from libs.common.security.redact import Secrets
from services.registry.collection import Collection, ObjectBucket

# Concurrent KV writes in flight during a bulk add (bounded to keep latency of others low).
BULK_WINDOW = 256

_NODE_FIELDS = frozenset(f.name for f in msgspec.structs.fields(Node))


class Registry:
    def __init__(
        self,
        nodes: ObjectBucket[Node],
        profiles: ObjectBucket[Profile],
    ) -> None:
        self.nodes: Collection[Node] = Collection("node", nodes)
        self.profiles: Collection[Profile] = Collection("profile", profiles)
        self._addresses = validate.AddressIndex()
        self.nodes.on_change = self._index_node
        self.node_secrets = Secrets(Node)
        self.profile_secrets = Secrets(Profile)
        # One writer at a time: validation against the whole registry (unique addresses,
        # profile cycles) and the write it allows must not interleave with another write.
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        await self.profiles.load()
        await self.nodes.load()
        if not self.profiles.items and not self.nodes.items:
            # A fresh install gets Warewulf's default profile, as `wwctl` users expect.
            with contextlib.suppress(Conflict):  # another replica seeded it first
                await self.put_profile(DEFAULT_PROFILE_NAME, default_profile(), create_only=True)

    async def stop(self) -> None:
        await self.nodes.close()
        await self.profiles.close()

    def _index_node(self, name: str, old: Node | None, new: Node | None) -> None:
        self._addresses.remove(name)
        if new is not None:
            self._addresses.add(new)

    # -- reads ---------------------------------------------------------------------------

    def list_nodes(self, names: Iterable[str] | None = None) -> list[Node]:
        return self.nodes.listing(names)

    def list_profiles(self, names: Iterable[str] | None = None) -> list[Profile]:
        return self.profiles.listing(names)

    def mac_owner(self, mac: str) -> str | None:
        """The node that has hardware address `mac`, or None."""
        return self._addresses.mac_owner(mac)

    def merged_node(self, name: str) -> MergedNode:
        return merge.merge_node(self.nodes.get(name), self.profiles.items)

    def merged_profile(self, name: str) -> MergedProfile:
        return merge.merge_profile(self.profiles.get(name), self.profiles.items)

    # -- node writes ---------------------------------------------------------------------

    def _check_node(self, name: str, node: Node) -> Node:
        validate.validate_name(name)
        # A secret sent back masked (read, edited, put back) keeps its stored value.
        node = self.node_secrets.keep_masked(node, self.nodes.items.get(name))
        node = validate.validate_node(msgspec.structs.replace(node, name=name))
        validate.check_profiles_exist(node, self.profiles.items)
        self._addresses.check(node)
        return node

    async def put_node(
        self, name: str, node: Node, *, if_match: int | None = None, create_only: bool = False
    ) -> Node:
        async with self._lock:
            current = self.nodes.expect_revision(name, if_match)
            if create_only and current is not None:
                raise Conflict(f"node {name!r} already exists", field="name")
            return await self.nodes.write(name, self._check_node(name, node), previous=current)

    async def patch_node(
        self, name: str, patch: dict[str, Any], *, if_match: int | None = None
    ) -> Node:
        async with self._lock:
            current = self.nodes.expect_revision(name, if_match) or self.nodes.get(name)
            node = _patched(current, patch, Node)
            return await self.nodes.write(name, self._check_node(name, node), previous=current)

    async def delete_node(self, name: str, *, if_match: int | None = None) -> None:
        async with self._lock:
            current = self.nodes.expect_revision(name, if_match) or self.nodes.get(name)
            await self.nodes.remove(name, previous=current)

    async def bulk_add(self, bulk: BulkAdd) -> BulkResult:
        names = ranges.expand_names(bulk.names)
        template = _template_of(bulk)
        if not template.profiles and DEFAULT_PROFILE_NAME in self.profiles.items:
            # As `wwctl node add`: a node added without profiles gets the default one.
            template = msgspec.structs.replace(template, profiles=[DEFAULT_PROFILE_NAME])
        addresses = ranges.count_up(bulk.ipaddr, len(names)) if bulk.ipaddr else None
        ipmi_addresses = ranges.count_up(bulk.ipmiaddr, len(names)) if bulk.ipmiaddr else None
        async with self._lock:
            taken = [n for n in names if n in self.nodes.items]
            if taken:
                raise Conflict(f"nodes already exist: {', '.join(taken[:10])}", field="names")
            planned: list[Node] = []
            index = validate.AddressIndex()  # addresses within this bulk must be unique too
            for i, name in enumerate(names):
                node = template
                if addresses:
                    node = _with_address(node, bulk.netname, addresses[i])
                if ipmi_addresses:
                    ipmi = node.ipmi or IPMI()
                    node = msgspec.structs.replace(
                        node, ipmi=msgspec.structs.replace(ipmi, ipaddr=ipmi_addresses[i])
                    )
                node = self._check_node(name, node)
                index.check(node)
                index.add(node)
                planned.append(node)
            stored = await _bounded_gather(
                [self.nodes.write(n.name, n, previous=None) for n in planned], BULK_WINDOW
            )
        return BulkResult(created=names, revisions={n.name: n.revision for n in stored})

    # -- profile writes ------------------------------------------------------------------

    def _check_profile(self, name: str, profile: Profile) -> Profile:
        validate.validate_name(name)
        profile = self.profile_secrets.keep_masked(profile, self.profiles.items.get(name))
        profile = validate.validate_profile(msgspec.structs.replace(profile, name=name))
        validate.check_profiles_exist(profile, {**self.profiles.items, name: profile})
        validate.check_no_cycle(name, profile, self.profiles.items)
        return profile

    async def put_profile(
        self, name: str, profile: Profile, *, if_match: int | None = None, create_only: bool = False
    ) -> Profile:
        async with self._lock:
            current = self.profiles.expect_revision(name, if_match)
            if create_only and current is not None:
                raise Conflict(f"profile {name!r} already exists", field="name")
            checked = self._check_profile(name, profile)
            return await self.profiles.write(name, checked, previous=current)

    async def patch_profile(
        self, name: str, patch: dict[str, Any], *, if_match: int | None = None
    ) -> Profile:
        async with self._lock:
            current = self.profiles.expect_revision(name, if_match) or self.profiles.get(name)
            profile = self._check_profile(name, _patched(current, patch, Profile))
            return await self.profiles.write(name, profile, previous=current)

    async def delete_profile(self, name: str, *, if_match: int | None = None) -> None:
        async with self._lock:
            current = self.profiles.expect_revision(name, if_match) or self.profiles.get(name)
            users = [n.name for n in self.nodes.items.values() if name in n.profiles]
            users += [p.name for p in self.profiles.items.values() if name in p.profiles]
            if users:
                raise Conflict(
                    f"profile {name!r} is used by {', '.join(sorted(users)[:10])}", field="name"
                )
            await self.profiles.remove(name, previous=current)

    # -- nodes.conf ----------------------------------------------------------------------

    def export_conf(self, *, secrets: bool = False) -> str:
        """The registry as a nodes.conf; secrets masked unless `secrets`."""
        profiles, nodes = dict(self.profiles.items), dict(self.nodes.items)
        if not secrets:
            profiles = {k: self.profile_secrets.mask(p) for k, p in profiles.items()}
            nodes = {k: self.node_secrets.mask(n) for k, n in nodes.items()}
        return nodesconf.dump_nodes_conf(profiles, nodes)

    async def import_conf(self, text: str) -> ImportResult:
        """Create or replace every profile and node of a Warewulf nodes.conf. Everything is
        validated before the first write, so a bad file changes nothing."""
        profiles, nodes = nodesconf.load_nodes_conf(text)
        async with self._lock:
            all_profiles = {**self.profiles.items, **profiles}
            checked_profiles: dict[str, Profile] = {}
            for name, profile in profiles.items():
                validate.validate_name(name, field=f"nodeprofiles.{name}")
                profile = self.profile_secrets.keep_masked(profile, self.profiles.items.get(name))
                p = validate.validate_profile(msgspec.structs.replace(profile, name=name))
                validate.check_profiles_exist(p, all_profiles)
                validate.check_no_cycle(
                    name, p, {k: v for k, v in all_profiles.items() if k != name}
                )
                checked_profiles[name] = p
            index = validate.AddressIndex()
            for node in self.nodes.items.values():
                if node.name not in nodes:
                    index.add(node)
            checked_nodes: dict[str, Node] = {}
            for name, node in nodes.items():
                validate.validate_name(name, field=f"nodes.{name}")
                node = self.node_secrets.keep_masked(node, self.nodes.items.get(name))
                n = validate.validate_node(msgspec.structs.replace(node, name=name))
                validate.check_profiles_exist(n, all_profiles)
                index.check(n)
                index.add(n)
                checked_nodes[name] = n
            for name, p in _profiles_in_dependency_order(checked_profiles):
                await self.profiles.write(name, p, previous=self.profiles.items.get(name))
            await _bounded_gather(
                [
                    self.nodes.write(name, n, previous=self.nodes.items.get(name))
                    for name, n in checked_nodes.items()
                ],
                BULK_WINDOW,
            )
        return ImportResult(profiles=sorted(profiles), nodes=sorted(nodes))


def _patched(current: msgspec.Struct, patch: dict[str, Any], model: type[Any]) -> Any:
    if not isinstance(patch, dict):
        raise Invalid("a patch must be a JSON object")
    for key in ("name", "revision"):
        patch.pop(key, None)
    doc = apply_merge_patch(msgspec.to_builtins(current), patch)
    try:
        return msgspec.convert(doc, model)
    except msgspec.ValidationError as e:
        raise Invalid(str(e), field=_msgspec_path(str(e))) from None


def _msgspec_path(message: str) -> str | None:
    marker = "at `$."
    if marker in message:
        return message.split(marker, 1)[1].rstrip("`")
    return None


def _template_of(bulk: BulkAdd) -> Node:
    fields = {f: getattr(bulk, f) for f in _NODE_FIELDS if f not in ("name", "revision")}
    return Node(**fields)


def _with_address(node: Node, netname: str, address: str) -> Node:
    devices = dict(node.network_devices)
    dev = devices.get(netname, NetDev())
    if ":" in address:
        dev = msgspec.structs.replace(dev, ipaddr6=address)
    else:
        dev = msgspec.structs.replace(dev, ipaddr=address)
    devices[netname] = dev
    return msgspec.structs.replace(node, network_devices=devices)


def _profiles_in_dependency_order(profiles: dict[str, Profile]) -> list[tuple[str, Profile]]:
    done: set[str] = set()
    out: list[tuple[str, Profile]] = []

    def visit(name: str) -> None:
        if name in done or name not in profiles:
            return
        done.add(name)
        for parent in profiles[name].profiles:
            visit(parent.lstrip("~"))
        out.append((name, profiles[name]))

    for name in profiles:
        visit(name)
    return out


async def _bounded_gather(coros: list[Any], window: int) -> list[Any]:
    semaphore = asyncio.Semaphore(window)

    async def run(coro: Any) -> Any:
        async with semaphore:
            return await coro

    return await asyncio.gather(*(run(c) for c in coros))
