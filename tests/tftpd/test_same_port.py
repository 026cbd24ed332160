"""A transfer is over when its last packet is handled, not when its boot stage is published:
a client asking again from the same port is served even while NATS is slow to take the event.
(Found by tests/hostile/test_tftp_fuzz.py: fresh sockets that reused a recent port went
unanswered, taken for a resend of a request already done.)"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from libs.common import names
from libs.common.bus.server import NatsServer
from tests.stack import run_service, start_nats, stop_process, wait_healthy
from tests.tftpd.tftpd_helpers import IPXE, RawClient, Tftpd, error_of, need, request


@pytest.fixture
def stalled(tmp_path: Path) -> Iterator[tuple[Tftpd, NatsServer]]:
    """tftpd on its own nats-server, which the test may stop (SIGSTOP) and resume."""
    need()
    data = tmp_path / "data"
    with start_nats(tmp_path / "nats") as nats:
        process, http_port, log = run_service("tftpd", data, nats.url)
        offset = http_port - names.PORTS["tftpd"]
        try:
            wait_healthy(f"http://127.0.0.1:{http_port}", process, log)
            yield Tftpd("127.0.0.1", names.TFTP_PORT + offset, nats.url, data, log), nats
        finally:
            assert nats.pid is not None
            os.kill(nats.pid, signal.SIGCONT)
            stop_process(process)


def test_a_new_request_from_the_same_port_while_nats_stalls(
    stalled: tuple[Tftpd, NatsServer],
) -> None:
    tftpd, nats = stalled
    assert nats.pid is not None
    os.kill(nats.pid, signal.SIGSTOP)  # every boot-stage publish now waits
    with RawClient(tftpd, timeout=2) as client:
        client.ask(request(1, b"no-such-file"))
        opcode, rest, _ = client.receive()
        assert (opcode, error_of(rest)[0]) == (5, 1)
        # The refused transfer is still publishing its failed stage; this is a new request.
        data, _ = client.download("undionly.kpxe", blksize="1468")
    assert data == (IPXE / "undionly.kpxe").read_bytes()
