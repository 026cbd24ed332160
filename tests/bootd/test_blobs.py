"""`/blobs/sha256/{digest}`: immutable blobs with Range, HEAD, a strong ETag and 304."""

from __future__ import annotations

import httpx
from conftest import Bootd

IMMUTABLE = "public, max-age=31536000, immutable"


async def stored(bootd: Bootd, data: bytes) -> str:
    return await bootd.store.put_bytes(data)


async def test_full_get(bootd: Bootd, http: httpx.AsyncClient) -> None:
    data = bytes(range(256)) * 4096
    digest = await stored(bootd, data)
    answer = await http.get(f"/blobs/sha256/{digest}")
    assert answer.status_code == 200
    assert answer.content == data
    assert answer.headers["etag"] == f'"{digest}"'
    assert answer.headers["cache-control"] == IMMUTABLE
    assert answer.headers["content-length"] == str(len(data))
    assert answer.headers["accept-ranges"] == "bytes"


async def test_sha256_prefix_and_upper_case(bootd: Bootd, http: httpx.AsyncClient) -> None:
    digest = await stored(bootd, b"prefixed")
    answer = await http.get(f"/blobs/sha256/sha256:{digest.upper()}")
    assert answer.status_code == 200 and answer.content == b"prefixed"


async def test_range(bootd: Bootd, http: httpx.AsyncClient) -> None:
    data = b"0123456789" * 1000
    digest = await stored(bootd, data)
    answer = await http.get(f"/blobs/sha256/{digest}", headers={"Range": "bytes=10-19"})
    assert answer.status_code == 206
    assert answer.content == data[10:20]
    assert answer.headers["content-range"] == f"bytes 10-19/{len(data)}"
    tail = await http.get(f"/blobs/sha256/{digest}", headers={"Range": "bytes=-5"})
    assert tail.status_code == 206 and tail.content == data[-5:]


async def test_unsatisfiable_range_is_416(bootd: Bootd, http: httpx.AsyncClient) -> None:
    digest = await stored(bootd, b"short blob")
    answer = await http.get(f"/blobs/sha256/{digest}", headers={"Range": "bytes=500-600"})
    assert answer.status_code == 416
    assert answer.headers["content-range"] == "bytes */10"


async def test_head(bootd: Bootd, http: httpx.AsyncClient) -> None:
    data = b"head only" * 100
    digest = await stored(bootd, data)
    answer = await http.head(f"/blobs/sha256/{digest}")
    assert answer.status_code == 200
    assert answer.content == b""
    assert answer.headers["content-length"] == str(len(data))
    assert answer.headers["etag"] == f'"{digest}"'


async def test_if_none_match_is_304(bootd: Bootd, http: httpx.AsyncClient) -> None:
    digest = await stored(bootd, b"cached by the node")
    answer = await http.get(f"/blobs/sha256/{digest}", headers={"If-None-Match": f'"{digest}"'})
    assert answer.status_code == 304
    assert answer.content == b""
    assert answer.headers["etag"] == f'"{digest}"'
    other = await http.get(f"/blobs/sha256/{digest}", headers={"If-None-Match": '"nope"'})
    assert other.status_code == 200


async def test_unknown_digest_is_404(http: httpx.AsyncClient) -> None:
    answer = await http.get(f"/blobs/sha256/{'0' * 64}")
    assert answer.status_code == 404
    assert "not in the store" in answer.json()["error"]


async def test_malformed_digest_is_400(http: httpx.AsyncClient) -> None:
    for bad in ("abc", "../../etc/passwd", "g" * 64):
        answer = await http.get(f"/blobs/sha256/{bad}")
        assert answer.status_code in (400, 404), bad
        if answer.status_code == 400:
            assert "not a sha256 digest" in answer.json()["error"]
    assert (await http.get("/blobs/sha256/abc")).status_code == 400
