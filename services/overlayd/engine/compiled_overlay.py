"""Rendering one overlay for one node: its tree and its templates' outputs as archive members.

An overlay is compiled once per revision (`CompiledOverlay`): its Jinja2 environment, every
template compiled, the static members (directories, plain files, symlinks) built, and the
context variables its templates read worked out. A render then only runs the templates.

Any failure (a syntax error, an undefined variable, a sandbox violation, a helper refusing,
abort()) is a RenderError naming the overlay, the template and the line: never a crash, never
a partial set of files.
"""

from __future__ import annotations

import stat
from collections.abc import Mapping
from itertools import islice
from typing import Any, Final

from jinja2 import Template, TemplateNotFound, TemplateSyntaxError
from jinja2.sandbox import SecurityError

from libs.common.errors import WolfpackError
from libs.common.formats.newc import Member
from services.overlayd.engine.errors import RenderError
from services.overlayd.engine.helpers import IncludeError
from services.overlayd.engine.outputs import AbortRender, OutputError, Outputs, SkipTemplate
from services.overlayd.engine.paths import parents
from services.overlayd.engine.sources import OverlayTree, TreeEntry, template_paths
from services.overlayd.engine.template import (
    FILENAME_PREFIX,
    NODE_VARIABLES,
    VOLATILE_VARIABLES,
    IncludeRefused,
    make_environment,
    variables_read,
)

MAX_OUTPUT: Final = 64 << 20  # characters one template may print
OUTPUT_BATCH: Final = 1024
_TYPE_BITS = {"dir": stat.S_IFDIR, "file": stat.S_IFREG, "symlink": stat.S_IFLNK}
# Errors whose own message says it all; others get their type name in front.
_PLAIN_MESSAGES = (SecurityError, IncludeError, IncludeRefused, OutputError, WolfpackError)


class CompiledOverlay:
    """An overlay tree ready to render many times."""

    def __init__(self, tree: OverlayTree) -> None:
        self.tree = tree
        self.name = tree.name
        self.env = make_environment(tree)
        paths = template_paths(tree)
        self.reads: frozenset[str] = variables_read(self.env, paths)
        # Renders differ between two nodes only if the overlay reads something per node.
        self.per_node = bool(self.reads & NODE_VARIABLES)
        self.volatile = bool(self.reads & VOLATILE_VARIABLES)
        self.broken: RenderError | None = None
        self.templates: list[tuple[str, TreeEntry, Template]] = []
        for path in paths:
            try:
                template = self.env.get_template(path)
            except Exception as err:  # a syntax error fails the overlay for every node
                self.broken = located(tree.name, path, err)
                break
            self.templates.append((path, tree.entries[path], template))
        rendered = frozenset(paths)
        self.static: dict[str, Member] = {
            path: _static_member(path, entry)
            for path, entry in tree.entries.items()
            if path not in rendered
        }


def _static_member(path: str, entry: TreeEntry) -> Member:
    if entry.kind == "symlink":
        return Member(path=path, mode=stat.S_IFLNK | 0o777, data=entry.target.encode())
    data = entry.data if entry.kind == "file" else b""
    mode = _TYPE_BITS[entry.kind] | entry.mode
    return Member(path=path, mode=mode, uid=entry.uid, gid=entry.gid, data=data)


def render_overlay(overlay: CompiledOverlay, context: Mapping[str, Any]) -> list[Member]:
    """Every member of `overlay` for the node `context` describes; raises RenderError."""
    if overlay.broken is not None:
        raise overlay.broken
    members = dict(overlay.static)
    written_by: dict[str, str] = {}
    for path, entry, template in overlay.templates:
        for member in run_template(overlay, path, entry, template, context):
            if member.path in members:
                other = written_by.get(member.path, "a file of the overlay")
                raise RenderError(
                    overlay.name,
                    f"{member.path} is written twice (also by {other})",
                    template=path,
                )
            members[member.path] = member
            written_by[member.path] = path
    _add_parents(overlay.name, members)
    return list(members.values())


def run_template(
    overlay: CompiledOverlay,
    path: str,
    entry: TreeEntry,
    template: Template,
    context: Mapping[str, Any],
) -> list[Member]:
    outputs = Outputs(overlay.tree, path, entry)
    run = dict(context)
    run.update(file=outputs.file, symlink=outputs.symlink, skip=outputs.skip, abort=outputs.abort)
    try:
        try:
            text = _generate(template, run)
        except Exception:
            # Jinja2's own handler: the same exception, its traceback mapped to template lines.
            template.environment.handle_exception()
        return outputs.members(text)
    except SkipTemplate:
        return []
    except _TooLong:
        message = f"prints more than {MAX_OUTPUT} characters"
        raise RenderError(overlay.name, message, template=path) from None
    except Exception as err:
        raise located(overlay.name, path, err) from None


class _TooLong(Exception):
    pass


def _generate(template: Template, context: dict[str, Any]) -> str:
    """The template's output, read in batches (Python-level work per batch, not per piece)
    so that a runaway loop stops at MAX_OUTPUT instead of filling memory."""
    pieces = template.root_render_func(template.new_context(context))
    out: list[str] = []
    size = 0
    while batch := list(islice(pieces, OUTPUT_BATCH)):
        size += sum(map(len, batch))
        if size > MAX_OUTPUT:
            raise _TooLong
        out += batch
    return "".join(out)


def located(overlay: str, template: str, err: BaseException) -> RenderError:
    """`err` as a RenderError at the template and line it happened in (the innermost template
    frame: an error inside an included template names the included one)."""
    line: int | None = None
    if isinstance(err, TemplateSyntaxError):
        if err.filename and err.filename.startswith(FILENAME_PREFIX):
            template = err.filename[len(FILENAME_PREFIX) :]
        line = err.lineno
        message = f"syntax error: {err.message}"
    else:
        tb = err.__traceback__
        while tb is not None:
            filename = tb.tb_frame.f_code.co_filename
            if filename.startswith(FILENAME_PREFIX):
                template, line = filename[len(FILENAME_PREFIX) :], tb.tb_lineno
            tb = tb.tb_next
        message = _message(err)
    return RenderError(overlay, message, template=template, line=line)


def _message(err: BaseException) -> str:
    if isinstance(err, AbortRender):
        return f"abort: {err}"
    if isinstance(err, TemplateNotFound):
        return err.message or f"include {err.name!r}: no such file in the overlay"
    if isinstance(err, _PLAIN_MESSAGES):
        return str(err)
    text = str(err)
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _add_parents(overlay: str, members: dict[str, Member]) -> None:
    """Every member's parent directories, as the kernel creates no missing parents."""
    for path in list(members):
        for parent in parents(path):
            found = members.get(parent)
            if found is None:
                members[parent] = Member(path=parent, mode=stat.S_IFDIR | 0o755)
            elif not stat.S_ISDIR(found.mode):
                raise RenderError(overlay, f"{path} is inside {parent}, which is not a directory")
