"""Bearer-token checks for the API routes, as FastAPI dependencies."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from libs.common import errors, names
from libs.common.security.accepted_tokens import FixedToken, Tokens

# The `Authorization: Bearer` header, declared so /docs offers to send it (immutable config).
Credentials = Annotated[
    HTTPAuthorizationCredentials | None,
    Depends(HTTPBearer(auto_error=False, description=f"the token in DATA/{names.TOKEN_FILE}")),
]


class TokenAuth:
    """Bearer-token checks as FastAPI dependencies: `Depends(auth.require_write)`.

    `require_write` guards every non-GET route; `require_read` guards GET routes unless the
    API was started with public reads. `tokens` is a fixed token or a
    libs.common.security.accepted_tokens.TokenFile, which follows `wolfpack token rotate`.
    """

    def __init__(self, tokens: str | Tokens, *, public_read: bool = False) -> None:
        self.public_read = public_read
        accepted = FixedToken(tokens) if isinstance(tokens, str) else tokens

        def check(credentials: HTTPAuthorizationCredentials | None) -> None:
            if credentials is None:
                raise errors.Unauthorized(
                    f"missing token: send 'Authorization: Bearer TOKEN' "
                    f"(TOKEN is in DATA/{names.TOKEN_FILE})"
                )
            accepted.check(credentials.credentials)

        async def require_write(
            credentials: Credentials,
        ) -> None:
            check(credentials)

        async def require_read(
            credentials: Credentials,
        ) -> None:
            if not public_read:
                check(credentials)

        self.require_write: Callable[..., Awaitable[None]] = require_write
        self.require_read: Callable[..., Awaitable[None]] = require_read
