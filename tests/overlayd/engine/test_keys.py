"""Cluster SSH host keys: made once with ssh-keygen, mode 0600, the same on every later call;
and the server's authorized keys for the ssh.authorized_keys overlay."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from services.overlayd.engine.keys import (
    KEY_TYPES,
    HostKeys,
    ensure_host_keys,
    load_host_keys,
    read_authorized_keys,
)
from tests.needs import need_command


@pytest.fixture(autouse=True)
def _needs_ssh_keygen() -> None:
    need_command("ssh-keygen", "openssh-client")


async def test_keys_are_made_once_and_kept(data_dir: Path) -> None:
    first = await load_host_keys(data_dir)
    check_pairs(data_dir / "overlayd/keys", first)
    again = await load_host_keys(data_dir)
    assert again == first
    templates = again.for_templates()
    assert templates["ed25519"]["public"].startswith("ssh-ed25519 ")


def check_pairs(folder: Path, first: HostKeys) -> None:
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert sorted(first.keys) == sorted(KEY_TYPES)
    for key_type in KEY_TYPES:
        private = folder / f"ssh_host_{key_type}_key"
        public = folder / f"ssh_host_{key_type}_key.pub"
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
        assert stat.S_IMODE(public.stat().st_mode) == 0o600
        key = first.keys[key_type]
        assert key.private.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
        # The public half is the private key's: ssh-keygen derives the same one.
        derived = subprocess.run(
            ["ssh-keygen", "-y", "-f", str(private)], capture_output=True, text=True, check=True
        ).stdout.split()[:2]
        assert key.public.split()[:2] == derived
    assert not [p for p in folder.iterdir() if p.name.startswith(".new-")]


def test_a_lost_public_key_is_derived_from_the_private_one(tmp_path: Path) -> None:
    first = ensure_host_keys(tmp_path, ["ed25519"])
    (tmp_path / "ssh_host_ed25519_key.pub").unlink()
    again = ensure_host_keys(tmp_path, ["ed25519"])
    assert again.keys["ed25519"].private == first.keys["ed25519"].private
    assert again.keys["ed25519"].public.split()[:2] == first.keys["ed25519"].public.split()[:2]
    assert stat.S_IMODE(os.stat(tmp_path / "ssh_host_ed25519_key.pub").st_mode) == 0o600


def test_authorized_keys_come_from_the_servers_ssh_folder(tmp_path: Path) -> None:
    ssh = tmp_path / ".ssh"
    ssh.mkdir()
    (ssh / "authorized_keys").write_text("# admins\nssh-ed25519 AAAA1 alice\n\nssh-rsa AAAA2 bob\n")
    (ssh / "id_ed25519.pub").write_text("ssh-ed25519 AAAA3 root@server\n")
    (ssh / "id_rsa.pub").write_text("ssh-rsa AAAA2 bob\n")  # already listed: once
    assert read_authorized_keys(ssh) == [
        "ssh-ed25519 AAAA1 alice",
        "ssh-rsa AAAA2 bob",
        "ssh-ed25519 AAAA3 root@server",
    ]
    assert read_authorized_keys(tmp_path / "missing") == []
    assert read_authorized_keys(None) == []
