"""What one template run writes: `file()`, `symlink()`, `skip()` and `abort()`.

`file(path)` and `symlink(target, path)` print a marker (a NUL byte, a per-run random nonce,
an index) into the output, and the output is cut at the markers afterwards. A marker travels
with the text wherever Jinja2 moves it (macros, call blocks, `{% set %}` captures), so what
the template prints after `file()` goes to that file, exactly, in every construct. Data cannot
forge a marker without the nonce; a filter that mangles one is reported, not ignored.
The line break right after a `{{ file(...) }}` is not part of the file, as Jinja2's
trim_blocks drops the one after a block tag: the call can sit on a line of its own.
"""

from __future__ import annotations

import re
import secrets
import stat
from typing import Final, NoReturn

import msgspec

from libs.common.formats.newc import Member
from services.overlayd.engine.paths import output_path, overlay_path, parse_mode
from services.overlayd.engine.sources import OverlayTree, TreeEntry

MAX_LINK_TARGET: Final = 4096
_MARKER = re.compile("\x00wp([0-9]{16}):([FL])([0-9]+)\x00")


class SkipTemplate(Exception):
    """skip(): this template produces nothing for this node."""


class AbortRender(Exception):
    """abort(message): the node's render fails with this message."""


class OutputError(Exception):
    """The outputs of a run do not add up (a marker lost or used twice)."""


class _Target(msgspec.Struct):
    path: str
    mode: int
    uid: int
    gid: int
    link: str | None = None
    reached: bool = False
    parts: list[str] = msgspec.field(default_factory=list)


class Outputs:
    """The helpers of one run of one template, and the files they add up to."""

    def __init__(self, tree: OverlayTree, path: str, entry: TreeEntry) -> None:
        self.tree = tree
        self.entry = entry
        # Digits only: a case filter leaves them as they are, so a mangled marker is seen.
        self.nonce = f"{secrets.randbelow(10**16):016d}"
        default = _Target(output_path(path), entry.mode, entry.uid, entry.gid, reached=True)
        self.targets: list[_Target] = [default]
        self.links: list[str] = []

    # -- the helpers templates call --

    def file(self, path: str, mode: int | str | None = None) -> str:
        """Everything printed after this goes to `path` (from the overlay's root)."""
        self._new_target(path, mode)
        return self._marker("F", len(self.targets) - 1)

    def symlink(self, target: str, path: str | None = None) -> str:
        """The current output (or a new output at `path`) is a symlink to `target`."""
        if not isinstance(target, str) or not target or "\x00" in target:
            raise ValueError(f"symlink({target!r}): the target must be a non-empty path")
        if len(target) > MAX_LINK_TARGET:
            raise ValueError(f"symlink(): a target longer than {MAX_LINK_TARGET} characters")
        if path is not None:
            new = self._new_target(path, None)
            new.link = target
            return self._marker("F", len(self.targets) - 1)
        self.links.append(target)
        return self._marker("L", len(self.links) - 1)

    def skip(self) -> NoReturn:
        raise SkipTemplate

    def abort(self, message: str = "aborted by the template") -> NoReturn:
        raise AbortRender(str(message))

    def _new_target(self, path: str, mode: int | str | None) -> _Target:
        clean = overlay_path(str(path), what=f"file({path!r})")
        declared = self.tree.declared.get(clean)
        uid = declared.uid if declared else self.entry.uid
        gid = declared.gid if declared else self.entry.gid
        if mode is not None:
            bits = parse_mode(mode, what=f"file({path!r}) mode")
        else:
            bits = declared.mode if declared else self.entry.mode
        target = _Target(clean, bits, uid, gid)
        self.targets.append(target)
        return target

    def _marker(self, kind: str, index: int) -> str:
        return f"\x00wp{self.nonce}:{kind}{index}\x00"

    # -- the result --

    def members(self, text: str) -> list[Member]:
        """Cut the output at the markers; one member per file or symlink written."""
        if len(self.targets) == 1 and not self.links:
            return [_member(self.targets[0], text)]  # no helper printed a marker
        current = self.targets[0]
        start = 0
        for match in _MARKER.finditer(text):
            if match.group(1) != self.nonce:
                continue  # data that merely looks like a marker: leave it as text
            current.parts.append(text[start : match.start()])
            start = match.end()
            kind, index = match.group(2), int(match.group(3))
            if kind == "L":
                current.link = self.links[index]
                continue
            if text.startswith("\n", start):
                start += 1  # `{{ file(...) }}` on a line of its own: as trim_blocks does
            current = self.targets[index]
            if current.reached:
                raise OutputError(f"the output of file({current.path!r}) was printed twice")
            current.reached = True
        current.parts.append(text[start:])
        contents = ["".join(target.parts) for target in self.targets]
        for content in contents:
            self._check_clean(content)
        default, named = self.targets[0], self.targets[1:]
        lost = [t.path for t in named if not t.reached]
        if lost:
            raise OutputError(
                f"file({lost[0]!r}) was called but never printed; call it as "
                f"{{{{ file({lost[0]!r}) }}}}"
            )
        written = zip(self.targets, contents, strict=True)
        if named and default.link is None:
            written = zip(named, contents[1:], strict=True)
        return [_member(target, content) for target, content in written]

    def _check_clean(self, text: str) -> None:
        if self.nonce in text:
            raise OutputError(
                "a file() or symlink() marker was changed by a filter; print them as is"
            )


def _member(target: _Target, text: str) -> Member:
    if target.link is not None:
        return Member(path=target.path, mode=stat.S_IFLNK | 0o777, data=target.link.encode())
    return Member(
        path=target.path,
        mode=stat.S_IFREG | target.mode,
        uid=target.uid,
        gid=target.gid,
        data=text.encode(),
    )
