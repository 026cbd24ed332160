"""One client may hold only so many transfers (--tftp-per-client, $WOLFPACK_TFTP_PER_CLIENT):
over it, its request gets an ERROR packet saying why, while other clients are served. Real UDP,
a real tftpd."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tftpd.tftpd_helpers import IPXE, RawClient, Tftpd, need, request, start_tftpd
from tests.waiting import eventually_sync

CAP = 3
DATA, ERROR = 3, 5


@pytest.fixture(params=["flag", "variable"])
def capped(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Tftpd]:
    """tftpd capped at CAP by its flag, or by its environment variable."""
    need()
    if request.param == "flag":
        flags, env = ("--tftp-per-client", str(CAP)), {}
    else:
        flags, env = (), {"WOLFPACK_TFTP_PER_CLIENT": str(CAP)}
    with start_tftpd(tmp_path, flags=flags, env=env) as server:
        yield server


def first_answer(client: RawClient) -> tuple[int, bytes, tuple[str, int]]:
    client.ask(request(1, b"undionly.kpxe"))
    return client.receive()


def test_one_client_cannot_hold_every_slot(capped: Tftpd) -> None:
    held = [RawClient(capped) for _ in range(CAP)]
    try:
        # CAP transfers from 127.0.0.1, none acknowledged: each holds its slot.
        senders = []
        for client in held:
            opcode, _, sender = first_answer(client)
            assert opcode == DATA
            senders.append(sender)

        # One more from the same address is refused, by an ERROR packet naming the reason.
        for _ in range(2):
            with RawClient(capped) as extra:
                opcode, rest, _ = first_answer(extra)
            assert opcode == ERROR
            code, text = struct.unpack("!H", rest[:2])[0], rest[2:-1].decode()
            assert code == 0
            assert text == f"too many transfers from 127.0.0.1 ({CAP} at once); try again"

        # Another machine is served meanwhile, whole.
        with RawClient(capped, local="127.0.0.2") as other:
            data, _ = other.download("undionly.kpxe")
        assert data == (IPXE / "undionly.kpxe").read_bytes()

        # One held transfer ends (the client gives up): its slot is free again.
        held[0].sock.sendto(struct.pack("!HH", ERROR, 0) + b"gave up\x00", senders[0])

        def opcode() -> int:
            with RawClient(capped) as again:
                return first_answer(again)[0]

        eventually_sync(
            opcode,
            "a DATA answer once a slot is free",
            within=5,
            until=lambda code: code == DATA,
            every=0,
        )
    finally:
        for client in held:
            client.sock.close()
    # The log says it once per time the limit is reached, not once per refused request.
    refusals = [line for line in capped.log.read_text().splitlines() if "too many" in line]
    assert len(refusals) == 1, refusals
    assert "WARNING" in refusals[0] and "127.0.0.1" in refusals[0]
