"""The cluster's SSH host keys and the server's authorized keys, for the ssh overlays.

Host keys are generated once with ssh-keygen (rsa, ecdsa, ed25519) into DATA/overlayd/keys,
mode 0600, and kept forever: every node presents the same host keys, so they survive reboots
and re-installs without `known_hosts` warnings. A key is generated in a temporary folder and
hard-linked into place, so two overlayd starting at once both end up with the one key that
won, and a crash never leaves half a key; a lost `.pub` is derived again from its private key.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import msgspec

from libs.common.errors import Invalid

KEY_TYPES: Final = ("rsa", "ecdsa", "ed25519")
KEYS_SUBDIR: Final = Path("overlayd") / "keys"
COMMENT: Final = "wolfpack cluster host key"


class HostKey(msgspec.Struct, frozen=True, kw_only=True):
    type: str
    private: str
    public: str


class HostKeys(msgspec.Struct, frozen=True, kw_only=True):
    keys: dict[str, HostKey] = msgspec.field(default_factory=dict)

    def for_templates(self) -> dict[str, dict[str, str]]:
        """`keys` in templates: `keys.rsa.private`, `keys.ed25519.public`, ..."""
        return {t: {"private": k.private, "public": k.public} for t, k in self.keys.items()}


def key_file(keys_dir: Path, key_type: str) -> Path:
    return keys_dir / f"ssh_host_{key_type}_key"


def ensure_host_keys(keys_dir: Path, key_types: Sequence[str] = KEY_TYPES) -> HostKeys:
    """The host keys in `keys_dir`, generating the missing ones (blocking: run in a thread)."""
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(keys_dir, 0o700)
    found: dict[str, HostKey] = {}
    for key_type in key_types:
        private = key_file(keys_dir, key_type)
        if not private.exists():
            _generate(keys_dir, key_type, private)
        public = private.with_name(private.name + ".pub")
        if not public.exists():
            _derive_public(private, public)
        found[key_type] = HostKey(
            type=key_type, private=private.read_text(), public=public.read_text()
        )
    return HostKeys(keys=found)


async def load_host_keys(data_dir: Path) -> HostKeys:
    return await asyncio.to_thread(ensure_host_keys, Path(data_dir) / KEYS_SUBDIR)


def _ssh_keygen() -> str:
    found = shutil.which("ssh-keygen")
    if found is None:
        raise Invalid("ssh-keygen is not installed (Debian: openssh-client); it makes host keys")
    return found


def _generate(keys_dir: Path, key_type: str, private: Path) -> None:
    with tempfile.TemporaryDirectory(prefix=".new-", dir=keys_dir) as work:
        made = Path(work) / private.name
        _run([_ssh_keygen(), "-q", "-t", key_type, "-N", "", "-C", COMMENT, "-f", str(made)])
        public = made.with_name(made.name + ".pub")
        for path in (made, public):
            os.chmod(path, 0o600)
        try:
            os.link(made, private)
        except FileExistsError:
            return  # another overlayd made it first: keep that one (its .pub is derived if lost)
        with contextlib.suppress(FileExistsError):
            os.link(public, private.with_name(private.name + ".pub"))


def _derive_public(private: Path, public: Path) -> None:
    key_type, key = _run([_ssh_keygen(), "-y", "-f", str(private)]).split()[:2]
    fd, temp = tempfile.mkstemp(prefix=".new-", dir=private.parent)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(f"{key_type} {key} {COMMENT}\n")
        os.chmod(temp, 0o600)
        os.replace(temp, public)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)


def _run(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
    if done.returncode != 0:
        raise Invalid(f"{' '.join(argv[:4])}... failed: {done.stderr.strip() or done.returncode}")
    return done.stdout


def read_authorized_keys(ssh_dir: Path | None) -> list[str]:
    """`authorized_keys` in templates: the server's /root/.ssh/authorized_keys entries and its
    id_*.pub keys, in that order, without duplicates or comments; [] if there are none."""
    if ssh_dir is None or not ssh_dir.is_dir():
        return []
    found: list[str] = []
    sources = [ssh_dir / "authorized_keys", *sorted(ssh_dir.glob("id_*.pub"))]
    for source in sources:
        try:
            text = source.read_text()
        except (OSError, UnicodeDecodeError):
            continue
        for line in text.splitlines():
            entry = line.strip()
            if entry and not entry.startswith("#") and entry not in found:
                found.append(entry)
    return found
