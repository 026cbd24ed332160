"""The one error rendering reports: which overlay, which template, which line, what went wrong."""

from __future__ import annotations

from libs.common.errors import WolfpackError
from libs.common.models.overlay import RenderFailedEvent


class RenderError(WolfpackError):
    """An overlay could not be rendered for a node. `template` (a path inside the overlay) and
    `line` are None when the failure is not in a template, e.g. a missing overlay."""

    def __init__(
        self, overlay: str, message: str, *, template: str | None = None, line: int | None = None
    ) -> None:
        super().__init__(message, field="overlay")
        self.overlay = overlay
        self.template = template
        self.line = line

    def __str__(self) -> str:
        where = self.overlay
        if self.template:
            where += f"/{self.template}"
            if self.line:
                where += f":{self.line}"
        return f"{where}: {self.message}"

    def __repr__(self) -> str:
        return f"RenderError({self!s})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RenderError) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple[str, str | None, int | None, str]:
        return (self.overlay, self.template, self.line, self.message)

    def event(self, node: str) -> RenderFailedEvent:
        """The `render_failed` payload for `node`."""
        return RenderFailedEvent(
            node=node,
            overlay=self.overlay,
            template=self.template,
            line=self.line,
            message=self.message,
        )
