"""Token rotation: a new DATA/api.token, while the tokens it replaced stay valid for a grace
period, listed with their expiry in DATA/api.token.previous, so running scripts and other
hosts can switch without a failed request. A rotation with no grace ends every replaced token
at once, the old one and those still in their grace from rotations before: after a leak.

Both files are replaced whole (a reader sees the old file or the new one) and only under an
exclusive lock on DATA/.api.token.lock, so two rotations at once run one after the other.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Final

import msgspec

from libs.common.fs.atomicfile import write_atomic
from libs.common.fs.filelock import file_lock
from libs.common.security.api_token import TOKEN_BYTES, read_token, token_path

PREVIOUS_SUFFIX: Final = ".previous"
LOCK_NAME: Final = ".api.token.lock"
# A token past its grace is remembered this long, so its refusal can say it was rotated out.
REMEMBER_EXPIRED: Final = 86400.0


class PreviousToken(msgspec.Struct, frozen=True, kw_only=True):
    token: str
    # Unix time (seconds) from which the token is refused.
    expires: float


class Rotation(msgspec.Struct, frozen=True, kw_only=True):
    """What `rotate_token` did: where the new token is, until when the old one is valid
    (None: the old one was revoked at once, or there was none), and how many tokens replaced
    before it were still in their grace and are refused now (grace 0 only)."""

    path: str
    expires: float | None
    replaced: bool
    revoked_earlier: int = 0


def previous_path(data_dir: Path) -> Path:
    return token_path(data_dir).with_name(token_path(data_dir).name + PREVIOUS_SUFFIX)


def read_previous(data_dir: Path) -> list[PreviousToken]:
    """The replaced tokens with their expiry ([] if none; a damaged file counts as none)."""
    try:
        raw = previous_path(data_dir).read_bytes()
    except FileNotFoundError:
        return []
    try:
        return msgspec.json.decode(raw, type=list[PreviousToken])
    except msgspec.DecodeError:
        return []


def rotate_token(data_dir: Path, grace: float, now: float | None = None) -> Rotation:
    """Write a new token; the current one stays valid `grace` seconds. Tokens replaced earlier
    keep the expiry they were given, except with grace 0, which refuses every one of them too:
    after a leak, one command ends every old token."""
    data_dir = Path(data_dir)
    now = time.time() if now is None else now
    with file_lock(data_dir / LOCK_NAME):
        old = read_token(data_dir)
        kept = [p for p in read_previous(data_dir) if p.expires > now - REMEMBER_EXPIRED]
        revoked = 0
        if grace <= 0:
            revoked = sum(p.expires > now for p in kept)
            # Kept, with their grace ended: their refusal can still say they were rotated out.
            kept = [PreviousToken(token=p.token, expires=min(p.expires, now)) for p in kept]
        expires = None
        if old is not None:
            # Even with no grace, remembered: its refusal can then say it was rotated out.
            expires = now + grace if grace > 0 else None
            kept.append(PreviousToken(token=old, expires=now + max(grace, 0)))
        # The list first: a service that reads between the two writes still accepts the old
        # token as the current one.
        write_atomic(previous_path(data_dir), msgspec.json.encode(kept))
        write_atomic(token_path(data_dir), (secrets.token_urlsafe(TOKEN_BYTES) + "\n").encode())
    return Rotation(
        path=str(token_path(data_dir)),
        expires=expires,
        replaced=old is not None,
        revoked_earlier=revoked,
    )
