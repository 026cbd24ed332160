"""Malformed and oversized HTTP to the bootd of a real `wolfpack up`: each request gets a clear
4xx (or, when it cannot be parsed at all, a closed connection), never a 5xx and never a hang;
requests left half-sent do not hold up other clients; bootd keeps serving throughout."""

from __future__ import annotations

import asyncio
import hashlib
import random
import selectors
import socket
from collections.abc import Iterator
from typing import Final

import httpx
import msgspec
import pytest

from libs.common import names
from libs.common.models.api import ErrorBody
from libs.common.models.image import ImageMeta
from libs.common.store.cas import ContentStore
from tests.hostile.hostile_http import Answer, exchange, get, half_sent
from tests.stack import UpStack, connected_bus
from tests.waiting import eventually_sync

BLOB: Final = random.Random(7).randbytes(100_000)
DIGEST: Final = hashlib.sha256(BLOB).hexdigest()
MiB: Final = 1024 * 1024
STATUS: Final = "/status/52:54:00:aa:00:02"


@pytest.fixture(scope="module")
def bootd(up: UpStack) -> Iterator[int]:
    """bootd's port, with BLOB in the store and public (an image's kernel: bootd serves only
    what nodes boot)."""
    asyncio.run(publish(up))
    with httpx.Client(base_url=up.url("bootd"), timeout=10) as client:
        eventually_sync(
            lambda: client.get(f"/blobs/sha256/{DIGEST}", headers={"If-None-Match": f'"{DIGEST}"'}),
            "bootd serving the blob",
            within=10,
            until=lambda got: got.status_code == 304,  # once bootd has seen the image, 404 before
            every=0,  # each look is a request
        )
    yield up.port_offset + 9873
    assert_still_serving(up)


async def publish(up: UpStack) -> None:
    await ContentStore(up.data / "cas").put_bytes(BLOB)
    async with connected_bus(up.nats_url, "hostile-test") as bus:
        images = await bus.bucket(names.BUCKET_IMAGES, ImageMeta)
        meta = ImageMeta(
            name="hostile-blob",
            source="tests/hostile",
            image_digest=DIGEST,
            kernel_digest=DIGEST,
            kernel_version="test",
            size=len(BLOB),
            built_at=0.0,
        )
        await images.put(meta.name, meta)


def assert_still_serving(up: UpStack) -> None:
    assert up.process.poll() is None
    r = httpx.get(f"{up.url('bootd')}/blobs/sha256/{DIGEST}", timeout=10)
    assert r.status_code == 200 and r.content == BLOB
    lines = up.log.read_text(errors="replace").splitlines()
    assert not [line for line in lines if line.startswith("[bootd]") and "Traceback" in line]


def json_error(answer: Answer) -> ErrorBody:
    assert answer.headers.get("content-type", "").startswith("application/json"), answer
    return msgspec.json.decode(answer.body, type=ErrorBody)


UNPARSEABLE: Final = {
    "garbage": b"GARBAGE\r\n\r\n",
    "no version": b"GET /healthz\r\n\r\n",
    "only line ends": b"\r\n\r\n\r\n",
    "NUL in the target": b"GET /he\x00althz HTTP/1.1\r\nHost: x\r\n\r\n",
    "control bytes": b"GET /heal\x01thz HTTP/1.1\r\nHost: x\r\n\r\n",
    "raw UTF-8 target": "GET /ipxe/ü HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
    "spaces in target": b"GET /ipxe/a b c HTTP/1.1\r\nHost: x\r\n\r\n",
    "TLS hello": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(40),
    "header without colon": b"GET /healthz HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n",
    "space in header name": b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Name: y\r\n\r\n",
    "two hosts": b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "HTTP/1.1 without Host": b"GET /healthz HTTP/1.1\r\n\r\n",
    "two content lengths": get(STATUS, "Content-Length: 2", "Content-Length: 3", method="POST"),
    "negative length": get(STATUS, "Content-Length: -1", method="POST"),
    "huge length": get(STATUS, "Content-Length: " + "9" * 30, method="POST"),
    "length and chunked": get(
        STATUS, "Content-Length: 3", "Transfer-Encoding: chunked", method="POST", body=b"0\r\n\r\n"
    ),
    "bad chunk size": get(STATUS, "Transfer-Encoding: chunked", method="POST", body=b"zz\r\n"),
    "endless chunk size": get(
        STATUS, "Transfer-Encoding: chunked", method="POST", body=b"f" * 100 + b"\r\n"
    ),
    "unknown coding": get(STATUS, "Transfer-Encoding: gzip", method="POST"),
    "huge method": b"X" * 100_000 + b" /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
}


@pytest.mark.parametrize("name", UNPARSEABLE)
def test_unparseable_requests_are_refused(bootd: int, name: str) -> None:
    answer = exchange(bootd, UNPARSEABLE[name], end=True)
    assert not answer.server_error, answer
    assert answer.refused, answer


# Odd but parseable: answered or refused, as the HTTP parser sees fit, never a 5xx.
TOLERATED: Final = {
    "unknown version": b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n",
    "bare line feeds": b"GET /healthz HTTP/1.1\nHost: x\n\n",
    "folded header": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
    "absolute target": b"GET http://elsewhere/healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    "asterisk target": b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
    "HTTP/2 preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "dot segments": get("/blobs/sha256/../../../etc/passwd"),
    "encoded dot segments": get("/blobs/sha256/..%2f..%2f..%2fetc%2fpasswd"),
    "unknown method": get("/healthz", method="BREW"),
    "body on GET": get("/healthz", "Content-Length: 5", body=b"hello"),
    "expect continue, no body": get(
        STATUS, "Expect: 100-continue", "Content-Length: 5", method="POST"
    ),
    "truncated body": get(STATUS, "Content-Length: 100", method="POST", body=b'{"stage":'),
}


@pytest.mark.parametrize("name", TOLERATED)
def test_odd_requests_never_fail_the_server(bootd: int, name: str) -> None:
    answer = exchange(bootd, TOLERATED[name], end=True)
    assert not answer.server_error, answer
    assert b"root:" not in answer.body


OVERSIZED: Final = {
    "1 MiB target": get("/ipxe/" + "a" * MiB),
    "10 MiB target": get("/ipxe/" + "a" * (10 * MiB)),
    "1 MiB header": get("/healthz", "X-Big: " + "b" * MiB),
    "10 MiB header": get("/healthz", "X-Big: " + "b" * (10 * MiB)),
    "100,000 headers": get("/healthz", *(f"X-{i}: y" for i in range(100_000))),
    "9 MiB body": get(STATUS, f"Content-Length: {9 * MiB}", method="POST", body=b"{" * 9 * MiB),
    "9 MiB chunked body": get(
        STATUS,
        "Transfer-Encoding: chunked",
        method="POST",
        body=(b"100000\r\n" + b"x" * MiB + b"\r\n") * 9 + b"0\r\n\r\n",
    ),
}


@pytest.mark.parametrize("name", OVERSIZED)
def test_oversized_requests_are_refused(bootd: int, name: str) -> None:
    answer = exchange(bootd, OVERSIZED[name])
    assert not answer.server_error, answer
    assert answer.refused, answer
    if answer.status == 413:
        assert "larger than the limit" in json_error(answer).error


BAD_MACS: Final = [
    "zz:zz:zz:zz:zz:zz",
    "52:54:00:00:00",
    "52:54:00:00:00:01:02",
    "52-54-00-00-00-0g",
    "52:54:00:00:00:01%00",
    "%00",
    "..%5C..%5Cetc%5Cpasswd",
    "%EF%BC%95%EF%BC%92:54:00:00:00:01",  # full-width digits
    "52:54:00:00:00:01%0d%0aX-Injected:%20yes",
    "a" * 10_000,
    "52%2054%2000%2000%2000%2001",
    "525400000001",
]
MAC_ROUTES: Final = ["/ipxe/{}", "/kernel/{}", "/image/{}", "/system/{}", "/runtime/{}",
                     "/provision/{}?stage=kernel"]  # fmt: skip


@pytest.mark.parametrize("route", MAC_ROUTES)
@pytest.mark.parametrize("mac", BAD_MACS)
def test_invalid_macs_get_400_naming_the_mac(bootd: int, route: str, mac: str) -> None:
    answer = exchange(bootd, get(route.format(mac)))
    assert answer.status == 400, answer
    error = json_error(answer)
    assert error.field == "mac" and "not a MAC address" in error.error
    assert "X-Injected" not in "".join(answer.headers)


def test_an_invalid_mac_in_an_agent_report(bootd: int) -> None:
    answer = exchange(bootd, get("/status/not-a-mac", method="POST", body=b"{}"))
    assert answer.status == 400 and json_error(answer).field == "mac"


SIZE: Final = len(BLOB)
RANGES: Final = [
    "bytes=-0",
    f"bytes={SIZE}-",
    "bytes=999999999-",
    "bytes=" + "9" * 40 + "-",
    "bytes=0-" + "9" * 40,
    "bytes=-" + "9" * 40,
    "bytes=5-1",
    "bytes=-1-5",
    "bytes=--5",
    "bytes=1-2-3",
    "bytes=abc",
    "bytes=",
    "bytes",
    "items=0-5",
    "bytes=0-0,-1",
    "bytes=0-5,3-8",
    "bytes=0-5,,,",
    ", ".join(["bytes=0-0"] * 2),
    "bytes=" + ",".join(f"{i}-{i}" for i in range(0, 20_000, 2)),
    "bytes=" + ",".join([f"0-{SIZE - 1}"] * 2000),
    "bytes=" + ",".join(f"-{i}" for i in range(1, 2000)),
    "bytes=0-\x7f",
]


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("value", RANGES)
def test_range_abuse_never_fails_the_server(bootd: int, method: str, value: str) -> None:
    answer = exchange(
        bootd,
        get(f"/blobs/sha256/{DIGEST}", f"Range: {value}", method=method),
        head=method == "HEAD",
    )
    assert answer.status in (200, 206, 400, 416), answer
    if answer.status == 416:
        assert answer.headers["content-range"] == f"bytes */{SIZE}"
    if answer.status == 200 and method == "GET":
        assert answer.body == BLOB
    if answer.status == 206 and "content-range" in answer.headers:
        first, last = map(int, answer.headers["content-range"].split()[1].split("/")[0].split("-"))
        assert method == "HEAD" or answer.body == BLOB[first : last + 1]
    # Ranges must not amplify: the answer is never much larger than the blob itself.
    assert int(answer.headers.get("content-length", 0)) <= 2 * SIZE + 65536


def test_a_single_range_is_served(bootd: int) -> None:
    answer = exchange(bootd, get(f"/blobs/sha256/{DIGEST}", "Range: bytes=100-199"))
    assert answer.status == 206
    assert answer.body == BLOB[100:200]


@pytest.mark.parametrize(
    "path", [f"/blobs/sha256/{DIGEST}", "/ipxe/52:54:00:aa:00:03", "/kernel/52:54:00:aa:00:03"]
)
def test_head_with_a_body_then_a_request_on_the_same_connection(bootd: int, path: str) -> None:
    first = f"HEAD {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello".encode()
    answer = exchange(bootd, first + get("/healthz"), head=True)
    assert not answer.server_error, answer
    assert answer.status is not None and answer.status < 500
    assert answer.statuses[-1] == 200, answer  # the body was read, the next request answered


def test_a_hostile_host_header_stays_out_of_the_ipxe_script(bootd: int) -> None:
    """The script chains to the address the node used; a Host that is no host name must not be
    written into it (iPXE would run `chain http://x" ...`): refused, or not used."""
    answer = exchange(bootd, get("/ipxe/52:54:00:aa:00:04").replace(b"127.0.0.1", b'x" y'))
    assert not answer.server_error, answer
    assert answer.status == 400 or b'x"' not in answer.body, answer.body


def waited_for(connections: list[socket.socket]) -> int:
    """How many of `connections` bootd neither closed nor answered (none is readable)."""
    with selectors.DefaultSelector() as selector:
        for sock in connections:
            selector.register(sock, selectors.EVENT_READ)
        return len(connections) - len(selector.select(timeout=0))


def test_half_sent_requests_do_not_hold_up_others(bootd: int, up: UpStack) -> None:
    starts = [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ",  # a head that never ends
        b"GET /blobs/sha256/",  # a request line that never ends
        f"POST {STATUS} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{{".encode(),
        # A bad MAC: refused (400) before its body is read.
        b"POST /status/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nab",
    ]
    held = [half_sent(bootd, starts[i % len(starts)]) for i in range(400)]
    unfinished = [sock for i, sock in enumerate(held) if i % len(starts) != 3]
    try:
        with httpx.Client(base_url=up.url("bootd"), timeout=10) as client:
            for _ in range(20):
                r = client.get(f"/blobs/sha256/{DIGEST}")
                assert r.status_code == 200 and r.content == BLOB
        # Served while bootd still waited for the rest of every unfinished request: not after
        # it gave up on them (closed them, or answered 408) to make room.
        assert waited_for(unfinished) == len(unfinished)
    finally:
        for sock in held:
            sock.close()
    assert_still_serving(up)
