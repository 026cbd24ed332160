"""Thousands of seeded hostile TFTP exchanges against the tftpd of a real `wolfpack up`, whose
root holds traps (links to a secret outside it, a link loop, a FIFO): tftpd never returns a
byte from outside its root, never stops answering, and afterwards still serves real clients.

tests/tftpd/test_robustness.py sends random garbage with a liveness check; this judges every
answer (see hostile_tftp) and reaches into transfers, negotiation and floods.
"""

from __future__ import annotations

import os
import random
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import httpx
import pytest

from libs.common import names
from services.tftpd.server import MAX_TRANSFERS
from tests.hostile.hostile_tftp import (
    Target,
    first_packet,
    flood,
    hostile_transfer,
    retransmissions,
)
from tests.hostile.hostile_tftp_cases import ERROR, broken_packet, option_abuse, path_trick
from tests.stack import UpStack
from tests.tftpd.tftpd_helpers import BINARIES, IPXE, RawClient, Tftpd, need, request
from tests.waiting import NeverHappened, eventually_sync

SEED: Final = 20240606
PATH_TRICKS: Final = 2500
OPTION_ABUSE: Final = 2500
BROKEN_PACKETS: Final = 2500
TRANSFERS: Final = 500
FLOOD: Final = MAX_TRANSFERS + 188  # more than tftpd serves at once
RETRANSMITTED: Final = 300
ALIVE_EVERY: Final = 100
# The flood comes from other loopback addresses than the real clients afterwards.
FLOOD_SOURCES: Final = [f"127.0.0.{i}" for i in range(3, 11)]
INSIDE: Final = b"served from inside the root\n" * 120  # several blocks at any blksize
# Past 65535 blocks of the smallest size: the block number wraps around to 0.
BIG: Final = random.Random(SEED).randbytes(65536 * 8 + 100)


@pytest.fixture(scope="module")
def target(up: UpStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    need()
    root = up.data / "tftp"
    outside = tmp_path_factory.mktemp("outside")
    marker = f"SECRET-{secrets.token_hex(8)}".encode()
    (outside / "secret.txt").write_bytes(marker + b"\n")
    (root / "inside.txt").write_bytes(INSIDE)
    (root / "big.bin").write_bytes(BIG)
    (root / "subdir").mkdir()
    (root / "subdir" / "inside2.txt").write_bytes(b"also inside\n")
    (root / "leak").symlink_to(outside / "secret.txt")
    (root / "outdir").symlink_to(outside)
    (root / "nested").mkdir()
    (root / "nested" / "up").symlink_to(os.path.relpath(outside / "secret.txt", root / "nested"))
    (root / "loop").symlink_to("loop")
    os.mkfifo(root / "fifo")
    served = {name: (IPXE / name).read_bytes() for name in BINARIES}
    served |= {"inside.txt": INSIDE, "subdir/inside2.txt": b"also inside\n", "big.bin": BIG}
    port = names.TFTP_PORT + up.port_offset
    server = Tftpd("127.0.0.1", port, up.nats_url, up.data, up.log)
    yield Target(server, served, forbidden=[marker, up.token.encode()])


def tftpd_lines(up: UpStack) -> list[str]:
    return [line for line in up.log.read_text(errors="replace").splitlines() if "[tftpd]" in line]


def test_tftp_fuzz(up: UpStack, target: Target, capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(SEED)
    servable = ["inside.txt", "subdir/inside2.txt", *BINARIES]
    cases: list[tuple[str, int]] = [
        ("path tricks", PATH_TRICKS),
        ("option abuse", OPTION_ABUSE),
        ("broken packets", BROKEN_PACKETS),
        ("inside a transfer", TRANSFERS),
    ]
    schedule = [family for family, count in cases for _ in range(count)]
    rng.shuffle(schedule)
    for i, family in enumerate(schedule):
        if family == "path tricks":
            first_packet(target, family, request(1, path_trick(rng)))
        elif family == "option abuse":
            packet, name = option_abuse(rng, servable)
            first_packet(target, family, packet, name)
        elif family == "broken packets":
            first_packet(target, family, broken_packet(rng))
        else:
            hostile_transfer(target, rng, rng.choice(["inside.txt", "undionly.kpxe"]))
        if i % ALIVE_EVERY == ALIVE_EVERY - 1:
            target.alive(f"case {i} ({family})")
    retransmissions(target, RETRANSMITTED)
    busy = flood_then_recover(target)
    target.alive("the floods")

    tally = target.tally
    with capsys.disabled():
        print(
            f"\nTFTP fuzz: {tally.total} cases ({tally.cases}), {tally.datagrams} datagrams, "
            f"{len(tally.crashes)} crashes, {len(tally.violations)} violations, "
            f"{busy} flood requests told 'busy', {tally.unanswered} unanswered (UDP under a flood)"
        )
    if tally.crashes or tally.violations:
        pytest.fail("\n".join([*tally.crashes, *tally.violations][:30]))
    assert up.process.poll() is None
    assert httpx.get(f"{up.url('tftpd')}/healthz", timeout=5).status_code == 200
    assert not [line for line in tftpd_lines(up) if "Traceback" in line]


def flood_then_recover(target: Target) -> int:
    """A flood past the transfer limit: the excess is told to retry (error 0), the flooded
    transfers time out (timeout=1), and a real client is served again within seconds."""
    answers = flood(target, FLOOD, FLOOD_SOURCES)
    busy = sum(answer[:4] == b"\x00\x05\x00\x00" for answer in answers)

    def download() -> bytes:
        with RawClient(target.server) as client:
            return client.download("undionly.kpxe", blksize="1468")[0]

    try:
        data = eventually_sync(
            download,
            "undionly.kpxe served after the flood",
            within=30,
            until=lambda data: True,  # any whole transfer: what it holds is checked below
            every=0.5,
            ignoring=(RuntimeError,),  # still busy
        )
    except NeverHappened as err:
        target.tally.crashes.append(str(err))
        return busy
    if data != target.served["undionly.kpxe"]:
        target.tally.violations.append("after the flood, undionly.kpxe came back wrong")
    # How many are refused depends on how fast the flood arrives against the flooded transfers
    # timing out (4 s each); on a loaded machine fewer overlap. Some must be, or the limit
    # does nothing.
    if busy == 0 and target.tally.unanswered < FLOOD - MAX_TRANSFERS:
        target.tally.violations.append(f"flood: none of {FLOOD} told to retry")
    return busy


def test_real_clients_after_the_fuzz(up: UpStack, target: Target, tmp_path: Path) -> None:
    need("tftp")
    out = tmp_path / "undionly.kpxe"
    run = subprocess.run(
        ["tftp", target.server.host, str(target.server.port), "-m", "binary", "-c", "get",
         "undionly.kpxe", str(out)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.read_bytes() == target.served["undionly.kpxe"], run.stdout + run.stderr
    import tftpy

    client = tftpy.TftpClient(target.server.host, target.server.port, options={"blksize": 1468})
    client.download("ipxe.efi", str(tmp_path / "ipxe.efi"))
    assert (tmp_path / "ipxe.efi").read_bytes() == target.served["ipxe.efi"]
    with RawClient(target.server) as raw:
        raw.ask(request(1, b"leak"))
        opcode, _, _ = raw.receive()
    assert opcode == ERROR


def test_block_numbers_roll_over_at_the_smallest_block_size(target: Target) -> None:
    with RawClient(target.server) as client:
        data, acked = client.download("big.bin", blksize="8")
    assert acked == {"blksize": "8"}
    assert data == BIG
