"""The API token: made once in DATA/api.token (mode 0600), read by services and wolfctl."""

from __future__ import annotations

import contextlib
import hmac
import os
import secrets
import tempfile
from pathlib import Path

from libs.common import names
from libs.common.errors import Invalid

TOKEN_BYTES = 32


def token_path(data_dir: Path, file: str = names.TOKEN_FILE) -> Path:
    return Path(data_dir) / file


def read_token(data_dir: Path, file: str = names.TOKEN_FILE) -> str | None:
    """The stored token (the API's, or `file`: names.NATS_TOKEN_FILE), None if there is none
    yet."""
    try:
        token = token_path(data_dir, file).read_text().strip()
    except FileNotFoundError:
        return None
    if not token:
        raise Invalid(f"{token_path(data_dir, file)} is empty; delete it to get a new token")
    return token


def ensure_token(data_dir: Path, file: str = names.TOKEN_FILE) -> str:
    """The stored token, creating it first if needed; safe when several processes race.

    The token is written to a private temporary file and hard-linked into place: the link
    fails if the file exists already (like O_EXCL), and a reader never sees it half written.
    """
    path = token_path(data_dir, file)
    path.parent.mkdir(parents=True, exist_ok=True)
    existing = read_token(data_dir, file)
    if existing is not None:
        return existing
    fd, temp_name = tempfile.mkstemp(prefix=f".{file}-", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(TOKEN_BYTES) + "\n")
            out.flush()
            os.fsync(out.fileno())
        # FileExistsError: another process won the race; use its token.
        with contextlib.suppress(FileExistsError):
            os.link(temp_name, path)
    finally:
        os.unlink(temp_name)
    token = read_token(data_dir, file)
    assert token is not None  # the link above or the winner's made the file
    return token


def tokens_equal(given: str | None, expected: str) -> bool:
    """Constant-time comparison, so the time taken says nothing about the token."""
    if given is None:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())
