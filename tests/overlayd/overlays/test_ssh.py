"""Overlays ssh.host_keys and ssh.authorized_keys."""

from __future__ import annotations

from tests.overlayd.overlays.helpers import Cluster, four_nic_node

KEYS = {
    "rsa": {"private": "-----BEGIN OPENSSH PRIVATE KEY-----\nRSA\n", "public": "ssh-rsa AAA c\n"},
    "ed25519": {"private": "ED25519-PRIVATE", "public": "ssh-ed25519 BBB c"},
}


def test_host_keys_with_their_modes() -> None:
    files = Cluster(nodes=[four_nic_node()], keys=KEYS).render("ssh.host_keys", "n01")
    found = {p: (f.mode, f.text) for p, f in files.items() if f.kind == "file"}
    assert found == {
        "etc/ssh/ssh_host_rsa_key": (0o600, "-----BEGIN OPENSSH PRIVATE KEY-----\nRSA\n"),
        "etc/ssh/ssh_host_rsa_key.pub": (0o644, "ssh-rsa AAA c\n"),
        "etc/ssh/ssh_host_ed25519_key": (0o600, "ED25519-PRIVATE\n"),  # ends with a newline
        "etc/ssh/ssh_host_ed25519_key.pub": (0o644, "ssh-ed25519 BBB c\n"),
    }


def test_host_keys_are_the_same_on_every_node() -> None:
    c = Cluster(nodes=[four_nic_node("n01"), four_nic_node("n02")], keys=KEYS)
    assert c.render("ssh.host_keys", "n01") == c.render("ssh.host_keys", "n02")


def test_no_keys_no_files() -> None:
    files = Cluster(nodes=[four_nic_node()]).render("ssh.host_keys", "n01")
    assert not [p for p, f in files.items() if f.kind == "file"]


def test_authorized_keys() -> None:
    keys = ["ssh-ed25519 AAAA root@server", "ssh-rsa BBBB admin@server\n# a comment\n"]
    files = Cluster(nodes=[four_nic_node()], authorized_keys=keys).render(
        "ssh.authorized_keys", "n01"
    )
    assert (files["root"].mode, files["root/.ssh"].mode) == (0o700, 0o700)
    authorized = files["root/.ssh/authorized_keys"]
    assert authorized.mode == 0o600
    lines = [line for line in authorized.text.splitlines() if not line.startswith("#")]
    assert lines == ["ssh-ed25519 AAAA root@server", "ssh-rsa BBBB admin@server"]


def test_no_authorized_keys_leaves_the_images() -> None:
    files = Cluster(nodes=[four_nic_node()]).render("ssh.authorized_keys", "n01")
    assert "root/.ssh/authorized_keys" not in files
