"""Blob answers: immutable, content-addressed files with a strong ETag (the digest), Range
and HEAD (Starlette's FileResponse), and 304 for a matching If-None-Match. On granian the file
body goes out through ASGI pathsend, sent by the server itself."""

from __future__ import annotations

from typing import Final

from starlette.responses import FileResponse, Response

from libs.common.cas import ContentStore, parse_digest
from libs.common.errors import NotFound

CACHE_CONTROL: Final = "public, max-age=31536000, immutable"
MEDIA_TYPE: Final = "application/octet-stream"


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags


def blob_response(store: ContentStore, digest: str, if_none_match: str | None) -> Response:
    """The blob `digest` (Invalid for a malformed digest, NotFound if not stored)."""
    hexdigits = parse_digest(digest)
    path = store.path(hexdigits)
    etag = f'"{hexdigits}"'
    headers = {"etag": etag, "cache-control": CACHE_CONTROL}
    if etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    if not path.is_file():
        raise NotFound(f"blob {hexdigits} not in the store", field="digest")
    return FileResponse(path, headers=headers, media_type=MEDIA_TYPE)
