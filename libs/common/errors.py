"""Typed errors of the domain; mapped to HTTP codes or event payloads only at the edge."""

from __future__ import annotations


class WolfpackError(Exception):
    """Base of every error wolfpack raises on purpose. `field` names what was wrong."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class NotFound(WolfpackError):
    """The named object does not exist."""


class Conflict(WolfpackError):
    """The write lost a race (stale revision) or would duplicate something unique."""


class Invalid(WolfpackError):
    """The input is malformed; `field` says which part."""


class Unauthorized(WolfpackError):
    """No or wrong credentials."""


class Forbidden(WolfpackError):
    """The credentials are understood and do not allow this (a node asking for another's)."""
