"""What test_secrets_audit.py looks for and where: the secret values of a running stack, every
place an operator or a neighbour could read (API answers, wolfctl output, logs, the WOLFPACK
stream), and a search that names each leak."""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path

from nats.js.api import DeliverPolicy

from libs.common import names, subjects
from tests.cli import run_cli_async
from tests.stack import UpStack, nats_client


@dataclass
class Secrets:
    """Each secret value by a name that says what it is."""

    values: dict[str, bytes] = field(default_factory=dict)

    def add(self, what: str, value: str | bytes) -> None:
        raw = value.encode() if isinstance(value, str) else value
        assert len(raw) >= 16, f"{what} is too short to search for"
        self.values[what] = raw

    def add_private_keys(self, keys_dir: Path) -> None:
        """Each line of each private host key's body (a line is what any copy keeps whole)."""
        keys = sorted(p for p in keys_dir.glob("ssh_host_*_key") if p.is_file())
        assert keys, f"overlayd generated no host key in {keys_dir}"
        for key in keys:
            body = [line for line in key.read_text().splitlines() if "PRIVATE KEY" not in line]
            for i, line in enumerate(body):
                if len(line) >= 40:
                    self.add(f"{key.name} line {i}", line)

    def found_in(self, text: str | bytes) -> list[str]:
        raw = text.encode() if isinstance(text, str) else text
        return [what for what, value in self.values.items() if value in raw]


@dataclass
class Places:
    """Where the texts came from, so a leak names its place."""

    texts: dict[str, bytes] = field(default_factory=dict)

    def add(self, where: str, text: str | bytes) -> None:
        self.texts[where] = text.encode() if isinstance(text, str) else text

    def leaks(self, secrets: Secrets) -> dict[str, list[str]]:
        found = {where: secrets.found_in(text) for where, text in self.texts.items()}
        return {where: what for where, what in found.items() if what}


async def wolfctl(stack: UpStack, *args: str) -> tuple[int, str, str]:
    """`wolfctl ARGS` as the administrator on the server runs it (DATA names the token)."""
    env = {"WOLFPACK_DATA": str(stack.data), "COLUMNS": "250"}
    done = await run_cli_async("wolfctl", *args, env=env, within=120)
    return done.returncode, done.stdout, done.stderr


async def stream_messages(nats_url: str) -> list[bytes]:
    """Every message of the WOLFPACK stream, subject, headers and payload, read from the first
    by an ordered consumer up to the last one stored now."""
    async with nats_client(nats_url) as nc:
        js = nc.jetstream()
        last = (await js.stream_info(names.STREAM)).state.last_seq
        found: list[bytes] = []
        if last == 0:
            return found
        sub = await js.subscribe(
            subjects.ALL, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
        )
        try:
            while True:
                msg = await sub.next_msg(timeout=10)
                headers = b"".join(f"{k}:{v}\n".encode() for k, v in (msg.headers or {}).items())
                found.append(msg.subject.encode() + b"\n" + headers + msg.data)
                if msg.metadata.sequence.stream >= last:
                    return found
        finally:
            await sub.unsubscribe()


def log_files(stack: UpStack) -> dict[str, bytes]:
    """up.log (every service's lines) and every other log under DATA (nats-server's)."""
    found = {"up.log": stack.log.read_bytes()}
    for path in stack.data.rglob("*.log"):
        found[str(path.relative_to(stack.data))] = path.read_bytes()
    return found


def unpacked(archive: bytes) -> bytes:
    """An overlay archive as sent (gzip'd newc): file contents stand whole in the cpio."""
    return gzip.decompress(archive)
